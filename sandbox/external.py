"""Refunds made outside any worker batch, as the merchant console (or another system) makes them.

`POST /_sandbox/external_refunds` with `{"trade_no", "count"=1, "amount_each",
"reason"?}` records `count` refunds of `amount_each` on the trade, each under
its own sandbox-made batch number: today's Beijing date, `EXT`, a six-digit
serial (`20261122EXT000001`: `yyyyMMdd` then 3-24 letters/digits, like any
batch_no). They are executions of the trade like any other: they count
toward the 99 refunds of a trade and the paid amount, appear in the refund
query by trade_no (and by their batch_no) and in the ledger's trade view.

They are the refunds of one partner's console: `"partner"` in the body
(one the sandbox serves), else the default (first) partner. Their batch
numbers are never one of that partner's batch numbers.

The console refuses what Alipay would refuse, so these do too (ValueError,
answered 400): an unknown trade (unless auto-trades creates it, paid with the
auto-trade amount), a trade that is not paid, more than 99 refunds in all, or
more refunded than paid.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any, Final

from sandbox.ledger import MAX_REFUNDS_PER_TRADE, Ledger
from sandbox.records import ExternalRefundRecord
from worker.domain.errors import DetailDataError
from worker.mapi import is_valid_trade_no, parse_amount

__all__ = ["DEFAULT_REASON", "external_batch_no", "plan_external"]

DEFAULT_REASON: Final = "external refund"
_MAX_REASON_CHARS: Final = 256


def external_batch_no(today: date, serial: int) -> str:
    """The batch number of the `serial`-th external refund: `yyyyMMdd` + `EXT` + 6 digits."""
    return f"{today:%Y%m%d}EXT{serial:06d}"


def plan_external(
    ledger: Ledger,
    data: object,
    *,
    today: date,
    auto_amount: Decimal | None,
    ts: float,
    at: str,
    partner: str,
) -> ExternalRefundRecord:
    """The record of the external refunds `data` asks for; ValueError names what is wrong."""
    if not isinstance(data, dict):
        raise ValueError('expected {"trade_no", "count", "amount_each"}')
    trade_no = data.get("trade_no")
    if not isinstance(trade_no, str) or not is_valid_trade_no(trade_no):
        raise ValueError("trade_no must be 16-64 digits")
    count = data.get("count", 1)
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 99:
        raise ValueError("count must be an integer between 1 and 99")
    amount = _amount(data.get("amount_each"))
    reason = data.get("reason", DEFAULT_REASON)
    if not isinstance(reason, str) or not 0 < len(reason) <= _MAX_REASON_CHARS:
        raise ValueError(f"reason must be a text of 1-{_MAX_REASON_CHARS} characters")
    trade = ledger.trades.get(trade_no)
    if trade is None:
        if auto_amount is None:
            raise ValueError(f"trade {trade_no} is unknown (create it first)")
        paid, refunded, done, created = auto_amount, Decimal("0.00"), 0, auto_amount
    else:
        if trade.status != "paid":
            raise ValueError(f"trade {trade_no} is {trade.status}, not paid")
        paid, refunded, done, created = trade.paid, trade.refunded, len(trade.executions), None
    if done + count > MAX_REFUNDS_PER_TRADE:
        raise ValueError(
            f"trade {trade_no} has {done} refunds; {count} more exceed {MAX_REFUNDS_PER_TRADE}"
        )
    if refunded + amount * count > paid:
        raise ValueError(f"trade {trade_no}: refunds would exceed the paid amount {paid}")
    return ExternalRefundRecord(
        trade_no=trade_no,
        amount=amount,
        batch_nos=_batch_nos(ledger, today, count, partner),
        reason=reason,
        ts=ts,
        at=at,
        auto_amount=created,
        partner=partner,
    )


def _amount(value: Any) -> Decimal:
    try:
        return parse_amount(value if isinstance(value, str) else "")
    except DetailDataError:
        raise ValueError('amount_each must be a string like "1.00" (> 0, two decimals)') from None


def _batch_nos(ledger: Ledger, today: date, count: int, partner: str) -> tuple[str, ...]:
    """`count` fresh numbers, skipping any a batch (worker or external) of `partner` has."""
    serial = len(ledger.external)
    numbers: list[str] = []
    while len(numbers) < count:
        serial += 1
        batch_no = external_batch_no(today, serial)
        if not ledger.is_accepted(batch_no, partner=partner):
            numbers.append(batch_no)
    return tuple(numbers)
