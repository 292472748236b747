"""The deadlines' watchdog: one thread per process, deadlines fired in time order,
finished ones never, and a forked child with a watchdog of its own."""

from __future__ import annotations

import multiprocessing
import threading
import time

from worker.adapters.gateway.deadline import Deadline


def _wait_for(check: object, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return True
        time.sleep(0.01)
    return False


def _enter(seconds: float) -> Deadline:
    """A deadline entered in a thread of its own (the active deadline is per thread)."""
    box: list[Deadline] = []
    thread = threading.Thread(target=lambda: box.append(Deadline(seconds).__enter__()))
    thread.start()
    thread.join()
    return box[0]


def test_many_deadlines_share_one_thread() -> None:
    _enter(0.01)  # the watchdog is running
    before = threading.active_count()
    deadlines = [_enter(30.0) for _ in range(50)]
    assert threading.active_count() <= before
    for d in deadlines:
        d.__exit__(None, None, None)


def test_an_earlier_deadline_added_later_fires_first() -> None:
    late = _enter(30.0)
    early = _enter(0.2)
    assert _wait_for(lambda: early.fired)
    assert not late.fired
    late.__exit__(None, None, None)


def test_a_finished_deadline_never_fires() -> None:
    done = _enter(0.1)
    done.__exit__(None, None, None)
    marker = _enter(0.3)
    assert _wait_for(lambda: marker.fired)
    assert not done.fired


def _child(result: multiprocessing.queues.Queue[bool]) -> None:
    d = _enter(0.1)
    result.put(_wait_for(lambda: d.fired, timeout=3.0))


def test_a_forked_child_has_a_watchdog_of_its_own() -> None:
    _enter(0.01)  # the parent's watchdog thread exists before the fork
    context = multiprocessing.get_context("fork")
    result: multiprocessing.queues.Queue[bool] = context.Queue()
    child = context.Process(target=_child, args=(result,))
    child.start()
    assert result.get(timeout=10) is True
    child.join(10)
    assert child.exitcode == 0
