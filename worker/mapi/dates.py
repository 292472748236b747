"""Beijing time, `refund_date` and `batch_no`.

The gateway reads every date in Beijing time (UTC+8; China has no daylight
saving, so a fixed offset is exact and needs no tz database). The machine's
own time zone never matters: every function takes an aware `datetime` and
converts it; naive datetimes are refused because their zone is a guess.

`batch_no` is the refund date as 8 digits (`yyyyMMdd`, Beijing) followed by a
serial of 3 to 24 ASCII letters or digits that is not `000`. The date part
must be the Beijing date of the request, the same day as `refund_date`
(REFUND_DATE_ERROR / BATCH_NO_FORMAT_ERROR otherwise). The number must be
unique for the partner forever; the caller supplies a unique serial.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone

from worker.domain.errors import DetailDataError

BEIJING = timezone(timedelta(hours=8), "Asia/Shanghai")
REFUND_DATE_FORMAT = "%Y-%m-%d %H:%M:%S"

_SERIAL = re.compile(r"[A-Za-z0-9]{3,24}", re.ASCII)
_BATCH_NO = re.compile(r"([0-9]{8})([A-Za-z0-9]{3,24})", re.ASCII)
_FORBIDDEN_SERIAL = "000"
_INT_SERIAL_WIDTH = 12


def beijing(now: datetime) -> datetime:
    """`now` converted to Beijing time; ValueError for a naive datetime."""
    if not isinstance(now, datetime):
        raise ValueError(f"expected a datetime, got {type(now).__name__}")
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("naive datetime: pass an aware datetime (e.g. datetime.now(timezone.utc))")
    return now.astimezone(BEIJING)


def beijing_date(now: datetime) -> date:
    """The calendar date in Beijing at instant `now`."""
    return beijing(now).date()


def refund_date(now: datetime) -> str:
    """`refund_date` for a request sent at `now`: `yyyy-MM-dd HH:mm:ss`, 24-hour, Beijing."""
    return beijing(now).strftime(REFUND_DATE_FORMAT)


def make_batch_no(now: datetime, serial: int | str) -> str:
    """Batch number for a batch sent at `now`: Beijing `yyyyMMdd` + serial.

    An int serial (>= 1) is zero-padded to 12 digits; a str serial must be 3 to
    24 ASCII letters or digits and not `000`. Raises ValueError otherwise.
    """
    if isinstance(serial, bool):
        raise ValueError("serial must be an int or a str, not a bool")
    if isinstance(serial, int):
        if serial < 1:
            raise ValueError(f"an int serial must be >= 1, got {serial}")
        text = str(serial).zfill(_INT_SERIAL_WIDTH)
        if len(text) > 24:
            raise ValueError("an int serial must have at most 24 digits")
    elif isinstance(serial, str):
        if not _SERIAL.fullmatch(serial):
            raise ValueError(f"serial {serial[:30]!r} must be 3-24 ASCII letters or digits")
        if serial == _FORBIDDEN_SERIAL:
            raise ValueError("serial must not be '000'")
        text = serial
    else:
        raise ValueError(f"serial must be an int or a str, got {type(serial).__name__}")
    return beijing(now).strftime("%Y%m%d") + text


def is_valid_batch_no(batch_no: str) -> bool:
    """True when `batch_no` has the gateway's shape: a real date, then a valid serial."""
    if not isinstance(batch_no, str):
        return False
    match = _BATCH_NO.fullmatch(batch_no)
    if match is None or match.group(2) == _FORBIDDEN_SERIAL:
        return False
    return _parse_date8(match.group(1)) is not None


def batch_no_date(batch_no: str) -> date:
    """The date written in a batch number; DetailDataError if it is not a valid batch_no."""
    parsed = _parse_date8(batch_no[:8]) if is_valid_batch_no(batch_no) else None
    if parsed is None:
        raise DetailDataError(
            f"batch_no {str(batch_no)[:40]!r} is not yyyyMMdd + 3-24 letters/digits"
        )
    return parsed


def _parse_date8(text: str) -> date | None:
    try:
        return date(int(text[:4]), int(text[4:6]), int(text[6:8]))
    except ValueError:
        return None
