"""`python -m bench --profile ROLE`: where a role's time goes while the rows run.

A watcher thread looks for processes of `refund-worker ROLE` (the devstack starts each
role as ``python -m worker.entrypoints.cli ROLE``) and attaches `py-spy record` to each
one as it appears, sampling until the process exits (py-spy stops with its target).
At the end the samples of every profiled process of the role are summed into
`bench/results/profile-ROLE.txt`: the functions holding the most samples, inclusive
and self, as a share of all samples (idle threads are not sampled, so the shares are of
the time the role was on the CPU or waiting in a call).

py-spy reads another process's memory: it needs the same user (or root) and a kernel
that allows ptrace (`kernel.yama.ptrace_scope` 0 or 1 with the same parent, or
`CAP_SYS_PTRACE` in a container).
"""

from __future__ import annotations

import collections
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterable
from pathlib import Path

SAMPLE_RATE = 200  # per second: enough for a 20-second row, light on the role
TOP = 40


def _role_of(cmdline: list[str]) -> str | None:
    """The role a process runs, from its command line, or None for any other process."""
    for i, part in enumerate(cmdline[:-1]):
        if part == "worker.entrypoints.cli":
            return cmdline[i + 1]
    return None


def _processes() -> Iterable[tuple[int, list[str]]]:
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        yield int(entry), [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _frame_name(frame: str) -> str:
    """`function (path/file.py:line)` -> `function (file.py)`."""
    function, _, where = frame.partition(" (")
    file = where.rsplit(":", 1)[0].rsplit("/", 1)[-1] if where else ""
    return f"{function} ({file})" if file else function


def summarize(raw_lines: Iterable[str], top: int = TOP) -> str:
    """The inclusive and self shares of py-spy's raw (collapsed stack) output."""
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw_lines:
        stack, _, count_text = line.rstrip("\n").rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [_frame_name(f) for f in stack.split(";")]
        for name in set(frames):
            inclusive[name] += count
        own[frames[-1]] += count
    if not total:
        return "no samples\n"
    lines = [f"{total} samples", "", "inclusive:"]
    lines += [f"{100 * n / total:5.1f}%  {name}" for name, n in inclusive.most_common(top)]
    lines += ["", "self:"]
    lines += [f"{100 * n / total:5.1f}%  {name}" for name, n in own.most_common(top // 2)]
    return "\n".join(lines) + "\n"


class Profiler:
    """Attach py-spy to every process of `roles` that appears while the block runs."""

    def __init__(self, roles: Iterable[str], workdir: Path, results: Path) -> None:
        self.roles = set(roles)
        self.workdir = workdir
        self.results = results
        self.recorders: list[tuple[str, Path, subprocess.Popen[bytes]]] = []
        self._seen: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="bench-profiler", daemon=True)
        self.py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))

    def __enter__(self) -> Profiler:
        if not Path(self.py_spy).exists():
            raise RuntimeError("--profile needs py-spy: .venv/bin/pip install py-spy")
        self._thread.start()
        return self

    def _watch(self) -> None:
        while not self._stop.wait(0.05):
            for pid, cmdline in _processes():
                role = _role_of(cmdline)
                if role in self.roles and pid not in self._seen:
                    self._seen.add(pid)
                    out = self.workdir / f"profile-{role}-{pid}.txt"
                    recorder = subprocess.Popen(
                        [self.py_spy, "record", "--pid", str(pid), "--format", "raw",
                         "--rate", str(SAMPLE_RATE), "--nonblocking", "--output", str(out)],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )  # fmt: skip
                    self.recorders.append((role, out, recorder))

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()
        for _, _, recorder in self.recorders:
            try:
                recorder.wait(timeout=30)  # the role has exited by now; py-spy follows
            except subprocess.TimeoutExpired:
                recorder.send_signal(signal.SIGINT)  # py-spy writes what it has on SIGINT
                recorder.wait(timeout=10)
        for role in sorted(self.roles):
            lines: list[str] = []
            for name, out, _ in self.recorders:
                if name == role and out.exists():
                    lines += out.read_text(encoding="utf-8", errors="replace").splitlines()
            path = self.results / f"profile-{role}.txt"
            path.write_text(summarize(lines), encoding="utf-8")
            print(f"profile of {role}: {path}", flush=True)
