"""Bounded exponential backoff: the one formula every retry loop of the worker uses.

`backoff_delay(n, base=b, cap=c)` is `b * 2**n` seconds, never more than `c`. The
callers keep their own counting and their own numbers:

* the submission policy's re-attempts of a batch (`policy.retry_delay`: 0.5 s doubling
  to 60 s, counted from the first re-attempt);
* a role's loop when the database or the broker is down (`run_loop`: 0.4 s doubling
  to its `max_backoff`, counted from the first failure);
* the RabbitMQ consumer's transient holds and reconnects, which spread each delay at
  random over its upper half so replicas do not retry in step.

Pure: no clock, no randomness, no I/O.
"""

from __future__ import annotations

__all__ = ["backoff_delay"]

# 2.0 ** 1000 is still a finite float; every realistic cap is reached long before.
_MAX_EXPONENT = 1000


def backoff_delay(attempt: int, *, base: float, cap: float) -> float:
    """Seconds to wait after `attempt` (from 0): `base * 2**attempt`, at most `cap`.

    Defined for any `attempt >= 0`, however large (no overflow). A `cap` below
    `base` wins. Raises `ValueError` for a negative attempt or a base or cap that
    is not positive.
    """
    if attempt < 0:
        raise ValueError(f"backoff attempt must be >= 0, got {attempt}")
    if base <= 0 or cap <= 0:
        raise ValueError("backoff needs a positive base and cap")
    return float(min(cap, base * 2.0 ** min(attempt, _MAX_EXPONENT)))
