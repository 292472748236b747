"""The benchmark's CPU split: parsing /proc and keeping process trees apart."""

from __future__ import annotations

import os

import pytest

from bench.cpu import (
    CpuMeter,
    ceiling_note,
    own_tree,
    parse_proc_stat,
    parse_stat,
    split_note,
)


def test_a_stat_line_gives_the_parent_and_the_ticks_with_reaped_children() -> None:
    # pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
    # utime stime cutime cstime ...
    line = "4242 (post gres: (x)) S 17 4242 4242 0 -1 4194560 10 0 0 0 300 40 7 3 20 0 1 0"
    assert parse_stat(line) == (17, 350)


def test_the_cpu_line_gives_busy_and_all_ticks() -> None:
    text = "cpu  100 5 50 800 20 1 4 0 0 0\ncpu0 50 2 25 400 10 0 2 0 0 0\n"
    busy, total = parse_proc_stat(text)
    assert total == 980
    assert busy == 980 - 800 - 20


def test_a_proc_stat_without_a_cpu_line_is_refused() -> None:
    with pytest.raises(ValueError, match="no cpu line"):
        parse_proc_stat("intr 1 2 3\n")


def test_a_tree_does_not_descend_into_another_named_root() -> None:
    children = {1: [2, 3], 2: [4], 3: [5], 5: [6]}
    assert sorted(own_tree(1, children, {3})) == [1, 2, 4]
    assert sorted(own_tree(3, children, {1})) == [3, 5, 6]


def test_the_meter_measures_this_process_burning_cpu() -> None:
    meter = CpuMeter(lambda: {"me": os.getpid()})
    with meter:
        total = 0
        for i in range(3_000_000):
            total += i * i
    assert total > 0
    assert meter.seconds["me"] > 0.05
    assert meter.wall >= meter.seconds["me"] * 0.5


def test_the_note_gives_microseconds_per_unit_largest_first() -> None:
    meter = CpuMeter(dict)
    meter.seconds = {"intake": 0.5, "postgres": 1.5}
    meter.machine_busy, meter.wall = 3.0, 2.0
    note = split_note(meter, 10_000)
    assert note.startswith("CPU µs per refund: total 200 (postgres 150, intake 50); ")
    assert "machine busy 1.5 of" in note


def _meter(seconds: dict[str, float]) -> CpuMeter:
    meter = CpuMeter(dict)
    meter.seconds = seconds
    meter.machine_busy, meter.wall = 2.0, 1.0
    return meter


def test_the_ceiling_is_the_cores_over_the_cpu_per_unit() -> None:
    # 10,000 messages: intake 100 µs, postgres 40, rabbitmq 20 each = 160 µs in all.
    meter = _meter({"intake": 1.0, "postgres": 0.4, "rabbitmq": 0.2})
    note = ceiling_note(meter, 10_000, anchor=25_000, target=0.6, unit="message", cores=2)
    # 2 cores / 160 µs = 12,500/s = 0.50 x 25,000.
    assert "2 cores give at most 12,500/s (0.50 x anchor)" in note
    # 0.6 x 25,000 = 15,000/s on 2 cores: 133 µs per message, 60 of them outside the roles.
    assert "0.6 x anchor leaves 133 µs of CPU per message" in note
    assert "took 60 of it" in note
    assert "process" not in note


def test_a_single_process_role_is_capped_by_one_core() -> None:
    meter = _meter({"intake": 1.0, "postgres": 0.4})
    note = ceiling_note(meter, 10_000, anchor=25_000, target=0.6, single="intake", cores=2)
    # 1 s / 100 µs = 10,000/s = 0.40 x anchor.
    assert note.endswith(
        "one intake process (one core at most) gives at most 10,000/s (0.40 x anchor)"
    )


def test_the_roles_do_not_count_as_outside() -> None:
    meter = _meter({"worker": 0.5, "relay": 0.5, "bench": 0.1, "sandbox": 0.1})
    note = ceiling_note(meter, 1_000, anchor=10_000, target=0.2, cores=2)
    assert "took 200 of it" in note
    assert "0.2 x anchor leaves 1,000 µs of CPU per refund" in note


def test_nothing_measured_says_so() -> None:
    assert ceiling_note(_meter({}), 1_000, anchor=10_000, target=0.2) == "no CPU measured"
    assert ceiling_note(_meter({"x": 1.0}), 0, anchor=10_000, target=0.2) == "no CPU measured"
