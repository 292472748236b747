"""Why `worker.adapters.gateway.deadline` keeps its own watchdog thread: per request.

Every gateway request (a submission, a query, each notification's `notify_verify`) runs
under a `Deadline`. The straightforward version starts a `threading.Timer` per request
and cancels it afterwards; the project's registers the deadline with one watchdog thread
per process. Both are timed entering and leaving a deadline, with the CPU time of the
whole process (the timer threads' start-up and exit included).

    .venv/bin/python bench/micro_deadline.py
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from worker.adapters.gateway.deadline import Deadline


def timer_per_request() -> None:
    timer = threading.Timer(30.0, lambda: None)
    timer.daemon = True
    timer.start()
    timer.cancel()


def watchdog() -> None:
    with Deadline(30.0):
        pass


def best_of(call: Callable[[], None], repeat: int = 5, number: int = 2000) -> tuple[float, float]:
    """Best (wall, CPU) seconds per call over `repeat` runs of `number` calls."""
    best_wall = best_cpu = float("inf")
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(number):
            call()
        best_wall = min(best_wall, (time.perf_counter() - wall) / number)
        best_cpu = min(best_cpu, (time.process_time() - cpu) / number)
    return best_wall, best_cpu


def main() -> None:
    ours_wall, ours_cpu = best_of(watchdog)
    theirs_wall, theirs_cpu = best_of(timer_per_request)
    print(
        f"enter and leave a deadline: project {ours_wall * 1e6:6.1f} us wall "
        f"{ours_cpu * 1e6:6.1f} us CPU   Timer per request {theirs_wall * 1e6:6.1f} us wall "
        f"{theirs_cpu * 1e6:6.1f} us CPU   ratio {theirs_cpu / ours_cpu:4.1f}x CPU"
    )


if __name__ == "__main__":
    main()
