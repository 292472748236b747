"""The replica rows' arithmetic: the middle of a stage, and naming what stopped it."""

from __future__ import annotations

import pytest

from bench.cpu import CpuMeter
from bench.scaling import middle_rate, stopped_by


def test_the_rate_leaves_out_the_first_and_last_tenth() -> None:
    # 10 events a second for 10 s, then one straggler 100 s later: the straggler is out.
    stamps = [i / 10 for i in range(100)] + [110.0]
    assert middle_rate(stamps) == pytest.approx(10.0, rel=0.02)


def test_weights_count_units_per_event() -> None:
    stamps = [float(i) for i in range(20)]
    assert middle_rate(stamps, [1000] * 20) == pytest.approx(1000.0, rel=0.01)


def test_too_few_events_are_refused() -> None:
    with pytest.raises(ValueError, match="too few"):
        middle_rate([1.0])


def test_replicas_of_a_role_count_as_the_role() -> None:
    meter = CpuMeter(dict)
    meter.seconds = {"worker": 1.0, "worker-1": 1.0, "postgres": 1.5, "notify-server": 0.5}
    meter.machine_busy, meter.wall = 3.8, 2.0
    note = stopped_by(meter, cores=2)
    assert "worker (50%)" in note
    assert note.startswith("stopped by CPU: 1.9 of 2 cores busy")
    meter.machine_busy = 2.0
    assert stopped_by(meter, cores=2).startswith("stopped by not CPU: 1.0 of 2")
