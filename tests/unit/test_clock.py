"""The runtime clock's test-only offset file (CLOCK_OFFSET_FILE)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from worker.config.settings import Settings, load_settings
from worker.entrypoints.runtime import OffsetClock, make_clock, system_clock

FIXED = datetime(2026, 3, 1, 15, 59, 50, tzinfo=UTC)  # 23:59:50 in Beijing


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def clock_for(path: Path, ticks: FakeMonotonic) -> OffsetClock:
    return OffsetClock(str(path), source=lambda: FIXED, monotonic=ticks)


def test_missing_file_means_no_offset(tmp_path: Path) -> None:
    clock = clock_for(tmp_path / "absent", FakeMonotonic())
    assert clock() == FIXED


def test_offset_from_the_file_shifts_the_time(tmp_path: Path) -> None:
    path = tmp_path / "offset"
    path.write_text("20.5\n")
    clock = clock_for(path, FakeMonotonic())
    assert clock() == FIXED + timedelta(seconds=20.5)


def test_file_is_reread_at_most_once_a_second(tmp_path: Path) -> None:
    path = tmp_path / "offset"
    path.write_text("10")
    ticks = FakeMonotonic()
    clock = clock_for(path, ticks)
    assert clock.offset_seconds == 10
    path.write_text("-3600")
    ticks.now += 0.5
    assert clock.offset_seconds == 10  # not yet re-read
    ticks.now += 0.6
    assert clock.offset_seconds == -3600
    path.unlink()
    ticks.now += 1.0
    assert clock.offset_seconds == 0


def test_unparseable_content_keeps_the_last_good_offset(tmp_path: Path) -> None:
    path = tmp_path / "offset"
    path.write_text("42")
    ticks = FakeMonotonic()
    clock = clock_for(path, ticks)
    assert clock.offset_seconds == 42
    for junk in ("", "soon", "nan", "inf"):
        path.write_text(junk)
        ticks.now += 1.0
        assert clock.offset_seconds == 42, junk


def test_the_setting_is_optional_and_unset_means_the_system_clock(tmp_path: Path) -> None:
    assert load_settings({"ALIPAY_MD5_KEY": "k" * 32}).clock_offset_file is None
    assert make_clock(Settings()) is system_clock
    path = tmp_path / "offset"
    settings = load_settings({"ALIPAY_MD5_KEY": "k" * 32, "CLOCK_OFFSET_FILE": str(path)})
    assert settings.clock_offset_file == str(path)
    clock = make_clock(settings)
    assert isinstance(clock, OffsetClock)
    path.write_text("86400")
    shifted = clock()
    assert abs((shifted - datetime.now(tz=UTC)).total_seconds() - 86400) < 5
