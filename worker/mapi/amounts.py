"""Money amounts as the gateway writes them: CNY yuan with at most two decimals.

Amounts are `Decimal` end to end, never floats. A refund amount must be greater
than zero and at most 100000000.00 (the largest amount the order-system contract
allows). In a request every amount is written with exactly two decimals
(`5.00`); in results Alipay sometimes writes fewer (`80`, `1272.0`), so
results are read with `parse_reported_amount`.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from worker.domain.errors import DetailDataError

CENT = Decimal("0.01")
MAX_AMOUNT = Decimal("100000000.00")

# ASCII digits only: `\d` would also accept other scripts' digits.
_AMOUNT = re.compile(r"[0-9]+(?:\.[0-9]{1,2})?", re.ASCII)
_REPORTED = re.compile(r"[0-9]+(?:\.[0-9]+)?", re.ASCII)
_MAX_TEXT = 32


def parse_amount(text: str) -> Decimal:
    """Parse a refund amount strictly: digits, optional `.` and 1-2 decimals, > 0, <= 1e8.

    Returns the value with exactly two decimal places. Raises DetailDataError
    naming the problem (no sign, no exponent, no spaces, no thousands separator).
    """
    if not isinstance(text, str):
        raise DetailDataError(f"amount must be a string, got {type(text).__name__}")
    if not text:
        raise DetailDataError("amount is empty")
    if len(text) > _MAX_TEXT or not _AMOUNT.fullmatch(text):
        raise DetailDataError(
            f"amount {text[:_MAX_TEXT]!r} is not a decimal with at most two decimals"
        )
    value = Decimal(text)
    if value <= 0:
        raise DetailDataError(f"amount {text!r} is not greater than zero")
    if value > MAX_AMOUNT:
        raise DetailDataError(f"amount {text!r} is above the maximum {MAX_AMOUNT}")
    return value.quantize(CENT)


def format_amount(value: Decimal) -> str:
    """Write an amount with exactly two decimals (`Decimal("5")` -> `"5.00"`).

    Refuses (DetailDataError) anything that is not a finite Decimal with at most
    two decimals: an amount is never rounded silently.
    """
    if not isinstance(value, Decimal):
        raise DetailDataError(f"amount must be a Decimal, got {type(value).__name__}")
    if not value.is_finite():
        raise DetailDataError(f"amount {value} is not a finite number")
    try:
        cents = value.quantize(CENT)
    except InvalidOperation:
        raise DetailDataError(f"amount {value} is too large") from None
    if cents != value:
        raise DetailDataError(f"amount {value} has more than two decimals")
    return f"{cents:f}"


def check_refund_amount(value: Decimal) -> Decimal:
    """Validate a refund amount held as a Decimal: > 0, at most two decimals, <= 1e8."""
    text = format_amount(value)
    if value <= 0:
        raise DetailDataError(f"amount {text} is not greater than zero")
    if value > MAX_AMOUNT:
        raise DetailDataError(f"amount {text} is above the maximum {MAX_AMOUNT}")
    return value.quantize(CENT)


def parse_reported_amount(text: str) -> Decimal | None:
    """Read an amount Alipay reports in a result (>= 0, e.g. `80`, `0`, `1272.0`, `0.01`).

    Returns None when the text is not a plain non-negative decimal or is not a
    whole number of cents; callers turn that into their own error.
    """
    if not text or len(text) > _MAX_TEXT or not _REPORTED.fullmatch(text):
        return None
    value = Decimal(text)
    cents = value.quantize(CENT)
    if cents != value:
        return None
    return cents
