"""Single-use tickets of the cashier page: the only thing the operator's browser holds.

A ticket is 43 random URL-safe characters (`secrets.token_urlsafe(32)`)
naming a payload kept here, server-side (the parsed request; never its
signature). Its life:

* `open`: a fresh ticket, `OPEN`;
* `wrong`: one more wrong try; after `max_tries` (5) the ticket is `LOCKED`;
* `use`: the ticket is `USED` and its payload handed out, exactly once even
  when two confirmations race;
* a ticket not used within `ttl` seconds (30 minutes), one this book never
  made (a guess, or one from before a restart: tickets are not journaled),
  or one forgotten to keep the book bounded (at most `max_open` open and as
  many spent ones, oldest first) is `UNKNOWN`.

Thread-safe; the clock is passed in (`now`, monotonic seconds).
"""

from __future__ import annotations

import enum
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Generic, TypeVar

__all__ = ["MAX_TRIES", "TICKET_SECONDS", "TicketBook", "TicketState", "looks_like_ticket"]

MAX_TRIES: Final = 5
TICKET_SECONDS: Final = 1800.0
MAX_OPEN: Final = 10_000

_SHAPE = re.compile(r"[A-Za-z0-9_-]{43}", re.ASCII)

P = TypeVar("P")


class TicketState(enum.StrEnum):
    OPEN = "open"
    USED = "used"
    LOCKED = "locked"
    UNKNOWN = "unknown"


def looks_like_ticket(text: str) -> bool:
    """Whether `text` has a ticket's shape (says nothing of whether it was ever made)."""
    return _SHAPE.fullmatch(text) is not None


@dataclass
class _Entry(Generic[P]):
    payload: P
    opened: float
    wrong: int = 0


class TicketBook(Generic[P]):
    """Open, spent and forgotten tickets (see the module docstring)."""

    def __init__(
        self,
        *,
        now: Callable[[], float] = time.monotonic,
        max_tries: int = MAX_TRIES,
        ttl: float = TICKET_SECONDS,
        max_open: int = MAX_OPEN,
    ) -> None:
        if max_tries < 1 or ttl <= 0 or max_open < 1:
            raise ValueError("max_tries, ttl and max_open must be positive")
        self._now = now
        self._max_tries = max_tries
        self._ttl = ttl
        self._max_open = max_open
        self._lock = threading.Lock()
        self._open: OrderedDict[str, _Entry[P]] = OrderedDict()
        self._spent: OrderedDict[str, TicketState] = OrderedDict()

    @property
    def max_tries(self) -> int:
        return self._max_tries

    def open(self, payload: P) -> str:
        """A fresh ticket for `payload`."""
        ticket = secrets.token_urlsafe(32)
        with self._lock:
            self._expire()
            self._open[ticket] = _Entry(payload, self._now())
            while len(self._open) > self._max_open:
                self._open.popitem(last=False)
        return ticket

    def look(self, ticket: str) -> tuple[TicketState, P | None]:
        """The ticket's state, and its payload while it is open."""
        with self._lock:
            self._expire()
            entry = self._open.get(ticket)
            if entry is not None:
                return TicketState.OPEN, entry.payload
            return self._spent.get(ticket, TicketState.UNKNOWN), None

    def wrong(self, ticket: str) -> int:
        """Count a wrong try of an open ticket; the tries left (0: it is now LOCKED).

        A ticket that is not open has no tries left.
        """
        with self._lock:
            self._expire()
            entry = self._open.get(ticket)
            if entry is None:
                return 0
            entry.wrong += 1
            left = self._max_tries - entry.wrong
            if left <= 0:
                self._spend(ticket, TicketState.LOCKED)
                return 0
            return left

    def use(self, ticket: str) -> P | None:
        """Spend an open ticket and return its payload; None when it was not open."""
        with self._lock:
            self._expire()
            entry = self._open.get(ticket)
            if entry is None:
                return None
            self._spend(ticket, TicketState.USED)
            return entry.payload

    def _spend(self, ticket: str, state: TicketState) -> None:
        del self._open[ticket]
        self._spent[ticket] = state
        while len(self._spent) > self._max_open:
            self._spent.popitem(last=False)

    def _expire(self) -> None:
        """Forget open tickets older than the ttl (they are in opening order)."""
        limit = self._now() - self._ttl
        while self._open:
            ticket, entry = next(iter(self._open.items()))
            if entry.opened > limit:
                return
            del self._open[ticket]
