"""Amounts of money on the bus: decimal strings of CNY with at most two decimals.

The schemas state the shape (README "Events"); the range is a rule they
cannot state: an amount is greater than 0 and at most `MAX_AMOUNT`
(dead-letter reason `amount_out_of_range`).
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Final

from worker.contracts.reasons import REASON_AMOUNT_OUT_OF_RANGE
from worker.domain.errors import EventValidationError

__all__ = ["CENT", "MAX_AMOUNT", "amount_in_range", "money_text"]

MAX_AMOUNT: Final = Decimal("100000000.00")
CENT: Final = Decimal("0.01")


def amount_in_range(field: str, text: str) -> Decimal:
    """`text` (already schema-valid) as a Decimal with two decimals.

    Raises `EventValidationError` (`amount_out_of_range`) naming `field` when
    it is not greater than 0 or is above `MAX_AMOUNT`.
    """
    value = Decimal(text)
    if value <= 0:
        raise EventValidationError(
            REASON_AMOUNT_OUT_OF_RANGE, f"{field}: must be greater than 0 (got {text!r})"
        )
    if value > MAX_AMOUNT:
        raise EventValidationError(
            REASON_AMOUNT_OUT_OF_RANGE, f"{field}: must be at most {MAX_AMOUNT} (got {text!r})"
        )
    return value.quantize(CENT)


def money_text(amount: Decimal) -> str:
    """`amount` with exactly two decimals; ValueError if that would change its value."""
    if not isinstance(amount, Decimal):
        raise ValueError(f"amount must be a Decimal, got {type(amount).__name__}")
    try:
        cents = amount.quantize(CENT)
    except InvalidOperation:
        raise ValueError(f"amount {amount} is not a finite amount of money") from None
    if cents != amount:
        raise ValueError(f"amount {amount} has more than two decimals")
    return f"{cents:f}"
