"""The books as the control API shows them: `GET /_sandbox/summary` and `GET /_sandbox/ledger`.

Read-only views of a `sandbox.ledger.Ledger`; the caller holds the books'
lock while they are built.
"""

from __future__ import annotations

from typing import Any

from sandbox.ledger import Ledger
from worker.mapi import format_amount

__all__ = ["ledger_summary", "ledger_view"]


def ledger_summary(ledger: Ledger) -> dict[str, Any]:
    """Counts over the whole ledger, plus the two red flags tests look at.

    `double_executed`: executions repeating a (batch_no, trade_no) pair.
    `over_refunded`: trades whose executed refunds exceed the paid amount.
    """
    notes = ledger.notifications.values()
    return {
        "requests_refused": sum(ledger.refused_by_code.values()),
        "refused_by_code": dict(ledger.refused_by_code),
        "batches_accepted": len(ledger.batches),
        "batches_by_service": dict(ledger.batches_by_service),
        "items_accepted": ledger.items_accepted,
        "items_by_code": dict(ledger.item_codes),
        "refunds_executed": ledger.executed,
        "amount_executed": format_amount(ledger.amount_executed),
        "external_refunds": ledger.external_count,
        "trades": len(ledger.trades),
        "trades_refunded_more_than_once": ledger.multi_refunded,
        "notifications": {
            "total": len(ledger.notifications),
            "pending": ledger.pending_count,
            "acknowledged": sum(1 for n in notes if n.acknowledged),
            "given_up": sum(1 for n in notes if n.given_up),
            "sent": sum(n.sends for n in notes),
            "lost": sum(n.lost for n in notes),
            "forged_sent": sum(n.forged_sends for n in notes),
            "forged_acknowledged": sum(n.forged_acknowledged for n in notes),
        },
        "double_executed": list(ledger.double),
        "over_refunded": [
            {
                "trade_no": t,
                "paid": format_amount(ledger.trades[t].paid),
                "refunded": format_amount(ledger.trades[t].refunded),
            }
            for t in sorted(ledger.over)
        ],
        "clock_offset_seconds": ledger.clock_offset,
    }


def ledger_view(
    ledger: Ledger,
    *,
    batch_no: str | None = None,
    trade_no: str | None = None,
    partner: str | None = None,
) -> dict[str, Any]:
    """The ledger as JSON: batches, refused requests, trades, notifications.

    `batch_no` / `trade_no` narrow every section to that batch or trade
    (a batch_no two partners used: both batches); `partner` narrows the
    batches, refused requests and notifications to that partner's, and the
    trades to those its batches hold.
    """
    batches = [
        b
        for b in ledger.batches.values()
        if batch_no in (None, b.record.batch_no) and partner in (None, b.record.partner)
    ]
    if trade_no is not None:
        batches = [b for b in batches if any(item[0] == trade_no for item in b.record.items)]
    requests = [
        r
        for r in ledger.requests
        if batch_no in (None, r.batch_no) and partner in (None, r.partner)
    ]
    if trade_no is not None:
        trades = [ledger.trades[trade_no]] if trade_no in ledger.trades else []
    elif batch_no is not None or partner is not None:
        wanted = {item[0] for b in batches for item in b.record.items}
        trades = [ledger.trades[t] for t in wanted if t in ledger.trades]
    else:
        trades = list(ledger.trades.values())
    wanted_batches = {b.record.key for b in batches}
    everything = batch_no is None and trade_no is None and partner is None
    notes = [
        n
        for n in ledger.notifications.values()
        if everything or (n.partner, n.batch_no) in wanted_batches
    ]
    return {
        "batches": [b.to_json() for b in batches],
        "refused": [
            {k: v for k, v in r.to_json().items() if k not in ("type", "ts")} for r in requests
        ],
        "trades": {t.trade_no: t.to_json() for t in trades},
        "notifications": {n.notify_id: n.to_json() for n in notes},
    }
