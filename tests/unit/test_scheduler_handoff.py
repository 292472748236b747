"""The scheduler's hand-off of new batches to the submission queue across broker outages."""

from __future__ import annotations

import pytest

from worker.domain.errors import BusUnavailable
from worker.entrypoints.roles.scheduler import Handoff


class FlakyQueue:
    """Takes batch numbers unless `down`; records what it took."""

    def __init__(self) -> None:
        self.taken: list[str] = []
        self.down = False
        self.fail_after: int | None = None

    def __call__(self, batch_no: str) -> None:
        if self.down or (self.fail_after is not None and len(self.taken) >= self.fail_after):
            raise BusUnavailable("broker away")
        self.taken.append(batch_no)


def test_everything_goes_out_when_the_broker_answers() -> None:
    queue = FlakyQueue()
    handoff = Handoff(queue)
    handoff.send(["b1", "b2"])
    assert queue.taken == ["b1", "b2"]
    assert len(handoff) == 0


def test_batches_the_broker_did_not_take_go_out_on_the_next_call() -> None:
    # Regression: the scheduler used to drop the rest of a round when one enqueue failed,
    # leaving those batches to the sweeper's re-drive a minute later.
    queue = FlakyQueue()
    queue.fail_after = 1
    handoff = Handoff(queue)
    with pytest.raises(BusUnavailable):
        handoff.send(["b1", "b2", "b3"])
    assert queue.taken == ["b1"]
    assert len(handoff) == 2

    queue.down = True
    with pytest.raises(BusUnavailable):
        handoff.send(["b4"])
    assert len(handoff) == 3

    queue.down, queue.fail_after = False, None
    handoff.send()
    assert queue.taken == ["b1", "b2", "b3", "b4"]
    assert len(handoff) == 0


def test_a_batch_waiting_and_redriven_goes_out_once() -> None:
    queue = FlakyQueue()
    queue.down = True
    handoff = Handoff(queue)
    with pytest.raises(BusUnavailable):
        handoff.send(["b1", "b2"])
    queue.down = False
    handoff.send(["b2", "b1", "b5"])
    assert queue.taken == ["b1", "b2", "b5"]
