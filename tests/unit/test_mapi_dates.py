"""Beijing dates, refund_date and batch_no, independent of the machine's time zone."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.domain.errors import DetailDataError
from worker.mapi import BEIJING, batch_no_date, is_valid_batch_no, make_batch_no, refund_date

LATE_UTC = datetime(2016, 8, 18, 16, 30, 0, tzinfo=UTC)  # 00:30 on 19 Aug in Beijing


@pytest.fixture(params=["UTC", "America/Los_Angeles", "Asia/Shanghai", "Pacific/Kiritimati"])
def machine_zone(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("TZ", request.param)
    time.tzset()
    yield request.param
    monkeypatch.undo()
    time.tzset()


def test_beijing_is_a_fixed_utc_plus_8() -> None:
    assert BEIJING.utcoffset(None) == timedelta(hours=8)
    assert BEIJING.tzname(None) == "Asia/Shanghai"


def test_utc_16_30_is_already_the_next_beijing_day(machine_zone: str) -> None:
    assert refund_date(LATE_UTC) == "2016-08-19 00:30:00"
    assert make_batch_no(LATE_UTC, 1) == "20160819000000000001"
    just_before = LATE_UTC - timedelta(minutes=30, seconds=1)  # 15:59:59 UTC
    assert refund_date(just_before) == "2016-08-18 23:59:59"
    assert make_batch_no(just_before, "abc") == "20160818abc"


def test_the_same_instant_in_any_offset_gives_the_same_answer(machine_zone: str) -> None:
    new_york = LATE_UTC.astimezone(timezone(timedelta(hours=-4)))
    assert refund_date(new_york) == refund_date(LATE_UTC)
    assert make_batch_no(new_york, 7) == make_batch_no(LATE_UTC, 7)


def test_refund_date_uses_24_hour_clock() -> None:
    assert refund_date(datetime(2016, 8, 18, 10, 49, 51, tzinfo=UTC)) == "2016-08-18 18:49:51"


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        refund_date(datetime(2016, 8, 18, 18, 49, 51))
    with pytest.raises(ValueError, match="naive"):
        make_batch_no(datetime(2016, 8, 18, 18, 49, 51), 1)


@pytest.mark.parametrize(
    ("serial", "suffix"),
    [
        (1, "000000000001"),
        (123, "000000000123"),
        (10**12, "1000000000000"),
        (10**24 - 1, "9" * 24),
        ("103", "103"),
        ("A1b2C3", "A1b2C3"),
        ("x" * 24, "x" * 24),
        ("001", "001"),
    ],
)
def test_make_batch_no(serial: int | str, suffix: str) -> None:
    batch_no = make_batch_no(LATE_UTC, serial)
    assert batch_no == "20160819" + suffix
    assert is_valid_batch_no(batch_no)
    assert batch_no_date(batch_no) == date(2016, 8, 19)


@pytest.mark.parametrize(
    "serial", [0, -5, 10**24, True, "000", "ab", "x" * 25, "ab-c", "ab c", "１２３", "", 1.5]
)
def test_make_batch_no_refuses_bad_serials(serial: object) -> None:
    with pytest.raises(ValueError, match="serial"):
        make_batch_no(LATE_UTC, serial)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("batch_no", "valid"),
    [
        ("2016081818103", True),  # a public integration's sample
        ("201101120001", True),  # Alipay's own sample
        ("20060702001", True),
        ("20160831" + "a" * 24, True),
        ("20160831000", False),
        ("2016083112", False),
        ("20160831" + "a" * 25, False),
        ("20161331123", False),  # month 13
        ("20160230123", False),  # 30 February
        ("2016083l123", False),
        ("20160831_23", False),
        ("", False),
    ],
)
def test_is_valid_batch_no(batch_no: str, valid: bool) -> None:
    assert is_valid_batch_no(batch_no) is valid
    if not valid:
        with pytest.raises(DetailDataError, match="batch_no"):
            batch_no_date(batch_no)


def test_is_valid_batch_no_tolerates_non_strings() -> None:
    assert is_valid_batch_no(None) is False  # type: ignore[arg-type]
    assert is_valid_batch_no(2016081818103) is False  # type: ignore[arg-type]


@given(
    st.datetimes(
        min_value=datetime(2000, 1, 1),
        max_value=datetime(2099, 12, 30),
        timezones=st.sampled_from([UTC, BEIJING, timezone(timedelta(hours=-11, minutes=-30))]),
    ),
    st.integers(min_value=1, max_value=10**20),
)
def test_batch_no_date_is_the_beijing_date_of_now(now: datetime, serial: int) -> None:
    batch_no = make_batch_no(now, serial)
    assert batch_no_date(batch_no) == now.astimezone(BEIJING).date()
    assert refund_date(now).startswith(batch_no_date(batch_no).isoformat())
