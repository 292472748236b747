"""The sandbox's idea of now: the real clock shifted by an adjustable offset.

Tests of the day rollover (a batch_no dated yesterday, a refund_date that is
no longer today) move the sandbox's clock instead of waiting for midnight:
`PUT /_sandbox/clock {"offset_seconds": N}`. The offset applies to every
date the gateway checks or writes (`refund_date`, the `batch_no` date,
`notify_time`); delays and the resend schedule run on the monotonic clock
and are not affected.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from datetime import UTC, date, datetime

from worker.mapi import BEIJING

__all__ = ["MAX_OFFSET_SECONDS", "SandboxClock"]

# Ten years either way is plenty for any rollover test and keeps datetime in range.
MAX_OFFSET_SECONDS = 10 * 366 * 86400.0


class SandboxClock:
    """Wall-clock time plus `offset_seconds`; thread-safe."""

    def __init__(self, offset_seconds: float = 0.0, *, source: Callable[[], float] = time.time):
        self._lock = threading.Lock()
        self._source = source
        self._offset = 0.0
        self.set_offset(offset_seconds)

    @property
    def offset_seconds(self) -> float:
        with self._lock:
            return self._offset

    def set_offset(self, offset_seconds: float) -> None:
        """Shift the clock; ValueError for a non-finite or out-of-range offset."""
        if isinstance(offset_seconds, bool) or not isinstance(offset_seconds, int | float):
            raise ValueError("offset_seconds must be a number")
        if not math.isfinite(offset_seconds) or abs(offset_seconds) > MAX_OFFSET_SECONDS:
            raise ValueError(f"offset_seconds must be finite and within +-{MAX_OFFSET_SECONDS:g}")
        with self._lock:
            self._offset = float(offset_seconds)

    def now(self) -> datetime:
        """The shifted instant, as an aware UTC datetime."""
        with self._lock:
            offset = self._offset
        return datetime.fromtimestamp(self._source() + offset, tz=UTC)

    def stamp(self) -> str:
        """`now()` in ISO 8601: the `at` of the books' records."""
        return self.now().isoformat()

    def today(self) -> date:
        """The shifted Beijing calendar date (what `refund_date` and `batch_no` must carry)."""
        return self.now().astimezone(BEIJING).date()
