"""Memory of the benchmark's processes: RSS of process trees, read from /proc.

`RssSampler` samples the RSS of named process trees (a role with its
descendants) in a thread and keeps the peaks and the series; `role_pids` names
the processes of a devstack `Stack`. Moved out of `bench.common`.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["RssSampler", "children_map", "role_pids", "rss_mb", "tree"]


def children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as handle:
                stat = handle.read()
        except OSError:
            continue
        # The command name may contain spaces and parentheses: split after the last ')'.
        fields = stat.rpartition(")")[2].split()
        if len(fields) > 1:
            children.setdefault(int(fields[1]), []).append(int(entry))
    return children


def tree(pid: int, children: Mapping[int, list[int]]) -> list[int]:
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, ()))
    return found


def rss_mb(pid: int) -> float:
    """Resident set size of one process in MB (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class RssSampler:
    """Samples the RSS of named process trees every `interval` seconds in a thread.

    A role's RSS is the sum over its process and its descendants (gunicorn's
    master and workers count as one role). `peaks` holds the largest sum seen,
    `series` every (seconds since start, MB) sample.
    """

    def __init__(self, pids: Callable[[], Mapping[str, int]], interval: float = 0.25) -> None:
        self._pids = pids
        self.interval = interval
        self.peaks: dict[str, float] = {}
        self.series: dict[str, list[tuple[float, float]]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-rss", daemon=True)
        self._started = 0.0

    def __enter__(self) -> RssSampler:
        self._started = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sample()

    def sample(self) -> None:
        children = children_map()
        now = time.monotonic() - self._started
        for name, pid in self._pids().items():
            total = sum(rss_mb(p) for p in tree(pid, children))
            if total <= 0:
                continue
            self.peaks[name] = max(self.peaks.get(name, 0.0), total)
            self.series.setdefault(name, []).append((now, total))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()


def role_pids(stack: Any) -> dict[str, int]:
    """role name -> pid of every running role process of a devstack `Stack` (and the sandbox)."""
    pids = {
        f"{role}" if index == 0 else f"{role}-{index}": proc.process.pid
        for (role, index), proc in stack.processes.items()
        if proc.process.poll() is None
    }
    if stack.sandbox_process is not None and stack.sandbox_process.process.poll() is None:
        pids["sandbox"] = stack.sandbox_process.process.pid
    return pids
