"""Rules the worker checks itself before a refund is ever batched (pure).

A refund that breaks one of these is `rejected`: it is never sent to the gateway,
and the order system hears why through a `refund.completed` event.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

# Alipay refunds one trade at most 99 times in all (docs/mapi.md, "The 99-refund limit").
MAX_REFUNDS_PER_TRADE = 99

REFUND_COUNT_EXCEEDED = "REFUND_COUNT_EXCEEDED"
REFUND_TOTAL_EXCEEDS_TRADE_AMOUNT = "REFUND_TOTAL_EXCEEDS_TRADE_AMOUNT"

REJECTION_MEANINGS = {
    REFUND_COUNT_EXCEEDED: f"the trade already has {MAX_REFUNDS_PER_TRADE} refunds",
    REFUND_TOTAL_EXCEEDS_TRADE_AMOUNT: "refunds of the trade would exceed its trade_amount",
}


@dataclass(slots=True)
class TradeTally:
    """Refunds of one trade that count against its limits (all but rejected and failed)."""

    count: int = 0
    total: Decimal = Decimal("0")


def check_refund(tally: TradeTally, amount: Decimal, trade_amount: Decimal | None) -> str | None:
    """The rejection code for one more refund of `amount` on a trade, or None if it may go.

    On None the tally is updated to include the refund, so a micro-batch holding
    several refunds of one trade is checked in arrival order.
    """
    if tally.count + 1 > MAX_REFUNDS_PER_TRADE:
        return REFUND_COUNT_EXCEEDED
    if trade_amount is not None and tally.total + amount > trade_amount:
        return REFUND_TOTAL_EXCEEDS_TRADE_AMOUNT
    tally.count += 1
    tally.total += amount
    return None
