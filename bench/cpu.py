"""CPU time per process tree, read from /proc: where a measurement's cycles went.

A rate on a shared two-core machine is noisy; the CPU time each process spends per
refund is not. `CpuMeter` reads, at the start and the end of a measurement, the
user + system time of named process trees (a role with its descendants, the
PostgreSQL postmaster with its backends, RabbitMQ's `beam.smp`, the benchmark
itself) including the time of children already reaped (`cutime`, `cstime`), so a
database backend or a publisher process that exited during the window still counts.
`split_note` turns the differences into "µs per refund" for the table's notes, and
`ceiling_note` says what that CPU cost allows on this machine's cores.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import psycopg

from bench.rss import children_map, role_pids

__all__ = [
    "CpuMeter",
    "busy_ticks",
    "ceiling_note",
    "machine_cores",
    "own_tree",
    "postgres_root",
    "process_ticks",
    "rabbitmq_root",
    "split_note",
    "stack_roots",
]

TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


def parse_stat(text: str) -> tuple[int, int]:
    """(ppid, utime + stime + cutime + cstime in ticks) of one /proc/PID/stat line."""
    # The command name may hold spaces and parentheses: the fields start after the last ')'.
    fields = text.rpartition(")")[2].split()
    # After the name: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14).
    return int(fields[1]), sum(int(f) for f in fields[11:15])


def process_ticks(pid: int) -> int:
    """CPU ticks of one process and its reaped children (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            return parse_stat(handle.read())[1]
    except (OSError, ValueError, IndexError):
        return 0


def parse_proc_stat(text: str) -> tuple[int, int]:
    """(busy ticks, all ticks) of the machine from the `cpu` line of /proc/stat."""
    for line in text.splitlines():
        if line.startswith("cpu "):
            values = [int(v) for v in line.split()[1:]]
            idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
            total = sum(values[:8])  # guest time is already inside user
            return total - idle, total
    raise ValueError("no cpu line in /proc/stat")


def busy_ticks() -> tuple[int, int]:
    with open("/proc/stat", encoding="ascii") as handle:
        return parse_proc_stat(handle.read())


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm", encoding="ascii", errors="replace") as handle:
            return handle.read().strip()
    except OSError:
        return ""


def rabbitmq_root() -> int | None:
    """The pid of the broker's Erlang VM (`beam.smp`), if it runs on this machine."""
    for entry in os.listdir("/proc"):
        if entry.isdigit() and _comm(int(entry)) == "beam.smp":
            return int(entry)
    return None


def postgres_root(database_url: str) -> int | None:
    """The postmaster's pid: the parent of a backend this function connects to."""
    try:
        with psycopg.connect(database_url, connect_timeout=5) as conn:
            row = conn.execute("SELECT pg_backend_pid()").fetchone()
            # Read while connected: the backend exits with the connection.
            with open(f"/proc/{row[0] if row else 0}/stat", encoding="ascii") as handle:
                return parse_stat(handle.read())[0]
    except (OSError, psycopg.Error):
        return None


def own_tree(pid: int, children: Mapping[int, list[int]], stop_at: set[int]) -> list[int]:
    """`pid` and its descendants, not descending into the processes in `stop_at`."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(c for c in children.get(current, ()) if c not in stop_at)
    return found


def stack_roots(stack: Any, *, bench: bool = True) -> Callable[[], dict[str, int]]:
    """name -> root pid of a devstack `Stack`'s roles and sandbox, PostgreSQL, RabbitMQ and
    (with `bench`) this benchmark process with its publishers and observer."""
    fixed: dict[str, int] = {}
    pg = postgres_root(stack.database_url)
    if pg is not None:
        fixed["postgres"] = pg
    broker = rabbitmq_root()
    if broker is not None:
        fixed["rabbitmq"] = broker
    if bench:
        fixed["bench"] = os.getpid()
    return lambda: {**role_pids(stack), **fixed}


@dataclass
class CpuMeter:
    """CPU seconds of named process trees between `start()` and `stop()`.

    `roots` returns name -> root pid (called at both ends: a role restarted in
    between would be measured wrongly, and none is during a benchmark row).
    """

    roots: Callable[[], Mapping[str, int]]
    seconds: dict[str, float] = field(default_factory=dict)
    machine_busy: float = 0.0  # busy CPU seconds of the whole machine (all cores)
    wall: float = 0.0
    _start: dict[str, int] = field(default_factory=dict)
    _machine: tuple[int, int] = (0, 0)
    _wall: float = 0.0

    def _read(self) -> dict[str, int]:
        children = children_map()
        roots = dict(self.roots())
        others = set(roots.values())
        # The trees are kept apart: the roles are children of the benchmark's process,
        # and each counts under its own name only.
        return {
            name: sum(process_ticks(p) for p in own_tree(pid, children, others - {pid}))
            for name, pid in roots.items()
        }

    def start(self) -> CpuMeter:
        self._start = self._read()
        self._machine = busy_ticks()
        self._wall = time.monotonic()
        return self

    def stop(self) -> CpuMeter:
        end = self._read()
        busy, _total = busy_ticks()
        self.wall = time.monotonic() - self._wall
        self.machine_busy = (busy - self._machine[0]) / TICKS_PER_SECOND
        self.seconds = {
            name: max(0, ticks - self._start.get(name, 0)) / TICKS_PER_SECOND
            for name, ticks in end.items()
            if name in self._start
        }
        return self

    def __enter__(self) -> CpuMeter:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# The process trees that are not the project's roles: what the target's budget must also pay.
_OUTSIDE = ("postgres", "rabbitmq", "sandbox", "bench")


def machine_cores(cores: int | None = None) -> int:
    """`cores` when given (tests), else this machine's (nproc)."""
    return cores or os.cpu_count() or 1


def _per_unit(meter: CpuMeter, units: int) -> dict[str, float]:
    """name -> CPU µs per unit (nothing for no units)."""
    if not units:
        return {}
    return {name: s * 1e6 / units for name, s in meter.seconds.items()}


def split_note(meter: CpuMeter, units: int, unit: str = "refund") -> str:
    """'CPU µs per refund: total 612 (postgres 230, rabbitmq 140, ...); machine 1.9 of 2 cores'."""
    per = _per_unit(meter, units)
    parts = ", ".join(
        f"{name} {value:,.0f}" for name, value in sorted(per.items(), key=lambda kv: -kv[1])
    )
    cores = machine_cores()
    used = meter.machine_busy / meter.wall if meter.wall else 0.0
    return (
        f"CPU µs per {unit}: total {sum(per.values()):,.0f} ({parts}); "
        f"machine busy {used:.1f} of {cores} cores over {meter.wall:.1f} s"
    )


def ceiling_note(
    meter: CpuMeter,
    units: int,
    anchor: float,
    target: float,
    *,
    unit: str = "refund",
    single: str | None = None,
    cores: int | None = None,
) -> str:
    """What the CPU split allows on this machine, next to what the target needs.

    At the measured CPU per unit, the machine's cores give at most `cores / total` units
    a second, whatever runs in parallel; a target of `target` x `anchor` leaves
    `cores / (target x anchor)` of CPU per unit, out of which the database, the broker,
    the sandbox and the benchmark are paid first. `single` names a role that runs as one
    Python process, so one core at most: its own CPU per unit caps the rate too.
    """
    cores = machine_cores(cores)
    per = _per_unit(meter, units)
    total = sum(per.values())
    if not total or anchor <= 0:
        return "no CPU measured"
    most = cores * 1e6 / total
    budget = cores * 1e6 / (target * anchor)
    outside = sum(v for name, v in per.items() if name in _OUTSIDE)
    parts = [
        f"ceiling at this CPU cost: {cores} cores give at most {most:,.0f}/s "
        f"({most / anchor:.2f} x anchor)",
        f"{target:g} x anchor leaves {budget:,.0f} µs of CPU per {unit}, and PostgreSQL, "
        f"RabbitMQ, the sandbox and the benchmark took {outside:,.0f} of it",
    ]
    if single and per.get(single):
        alone = 1e6 / per[single]
        parts.append(
            f"one {single} process (one core at most) gives at most {alone:,.0f}/s "
            f"({alone / anchor:.2f} x anchor)"
        )
    return "; ".join(parts)
