"""The console's session rules, pure: lifetime, idle timeout, where a sign-in may lead.

A session is Flask's signed cookie holding the operator's name, when they signed in
and when they were last seen (seconds since the epoch, from the clock passed in). It
ends `LIFETIME_SECONDS` after the sign-in, or `IDLE_SECONDS` after the last request,
whichever comes first.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from urllib.parse import urlsplit

LIFETIME_SECONDS = 8 * 3600
IDLE_SECONDS = 30 * 60

OPERATOR = "operator"
SIGNED_IN_AT = "signed_in_at"
SEEN_AT = "seen_at"


def session_operator(
    session: Mapping[str, object],
    now: float,
    *,
    lifetime: float = LIFETIME_SECONDS,
    idle: float = IDLE_SECONDS,
) -> tuple[str | None, str | None]:
    """(operator, None) for a live session, (None, why) otherwise (`why` None: never signed in)."""
    name = session.get(OPERATOR)
    signed_in_at = session.get(SIGNED_IN_AT)
    seen_at = session.get(SEEN_AT)
    if not isinstance(name, str) or not name:
        return None, None
    if not isinstance(signed_in_at, int | float) or not isinstance(seen_at, int | float):
        return None, "malformed"
    if now - signed_in_at >= lifetime or signed_in_at > now + 60:
        return None, "expired"
    if now - seen_at >= idle:
        return None, "idle"
    return name, None


def safe_next(target: str | None, default: str = "/") -> str:
    """`target` if it is a path on this site ("/..."), else `default`.

    Refuses absolute URLs, scheme-relative `//host` and `/\\host` (which browsers treat
    as another host), control characters, and anything not starting with one slash.
    """
    if not target or len(target) > 2000:
        return default
    if not target.startswith("/") or target.startswith(("//", "/\\")):
        return default
    if any(ord(ch) < 0x20 or ch == "\x7f" or ch == "\\" for ch in target):
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return default
    return target


def lock_message(locked_until: datetime) -> str:
    """What the sign-in page says about a locked account (its end in UTC, to the minute)."""
    return f"account locked until {locked_until.astimezone(UTC):%H:%M} UTC"


WRONG_MESSAGE = "name or password is wrong"
