"""RFC 3339 `date-time` values (section 5.6): parsing them, and writing them in UTC."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Final

__all__ = ["parse_rfc3339", "utc_text"]

_RFC3339: Final = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]+)?"
    r"(?:([Zz])|([+-])([0-9]{2}):([0-9]{2}))"
)


def parse_rfc3339(text: str) -> datetime:
    """An RFC 3339 `date-time` (section 5.6) as an aware datetime; ValueError otherwise.

    The offset is required (`Z` or `+hh:mm`); `T` and `Z` may be lowercase;
    fractions beyond microseconds are truncated. A leap second (`:60`, only at
    23:59 UTC) becomes 23:59:59.999999 because datetime cannot hold it.
    """
    match = _RFC3339.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"{str(text)[:60]!r} is not an RFC 3339 date-time")
    year, month, day, hour, minute, second = (int(match[i]) for i in range(1, 7))
    fraction = match[7]
    micro = int((fraction[1:] + "000000")[:6]) if fraction else 0
    offset_minutes = 0
    if not match[8]:
        off_h, off_m = int(match[10]), int(match[11])
        if off_h > 23 or off_m > 59:
            raise ValueError(f"{text!r} has an invalid time-zone offset")
        offset_minutes = (off_h * 60 + off_m) * (-1 if match[9] == "-" else 1)
    if hour > 23 or minute > 59 or second > 60:
        raise ValueError(f"{text!r} has an invalid time of day")
    if second == 60:
        if (hour * 60 + minute - offset_minutes) % 1440 != 23 * 60 + 59:
            raise ValueError(f"{text!r} has a leap second outside 23:59 UTC")
        second, micro = 59, 999999
    zone = timezone(timedelta(minutes=offset_minutes))
    return datetime(year, month, day, hour, minute, second, micro, zone)


def utc_text(moment: datetime) -> str:
    """`moment` as RFC 3339 in UTC with a `Z` (`2024-05-01T02:20:00.512000Z`).

    ValueError for a naive datetime (or anything that is not a datetime).
    """
    if not isinstance(moment, datetime) or moment.utcoffset() is None:
        raise ValueError("completed_at must be an aware datetime")
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
