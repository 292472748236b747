"""What the sandbox's books hold: paid trades, accepted batches and their notifications.

Plain state, changed only by `sandbox.ledger.Ledger.apply`; each entry writes
itself as the JSON the control API shows (`GET /_sandbox/ledger`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final

from sandbox.protocol import SUCCESS
from sandbox.records import BatchRecord
from worker.mapi import format_amount

__all__ = ["ZERO", "Batch", "Notification", "Trade"]

ZERO: Final = Decimal("0.00")


@dataclass(slots=True)
class Trade:
    """A paid trade and every refund executed against it."""

    trade_no: str
    paid: Decimal
    status: str
    auto: bool
    created_at: str
    refunded: Decimal = ZERO
    # (batch_no, amount, reason, at)
    executions: list[tuple[str, Decimal, str, str]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "trade_no": self.trade_no,
            "paid": format_amount(self.paid),
            "status": self.status,
            "auto": self.auto,
            "created_at": self.created_at,
            "refunded": format_amount(self.refunded),
            "refund_count": len(self.executions),
            "executions": [
                {"batch_no": b, "amount": format_amount(a), "reason": r, "at": at}
                for b, a, r, at in self.executions
            ],
        }


@dataclass(slots=True)
class Batch:
    """An accepted batch: what was asked and what happened to each item."""

    record: BatchRecord

    def to_json(self) -> dict[str, Any]:
        rec = self.record
        return {
            "partner": rec.partner,
            "batch_no": rec.batch_no,
            "received_at": rec.at,
            "service": rec.service,
            "seller": rec.seller,
            "charset": rec.charset,
            "sign_type": rec.sign_type,
            "refund_date": rec.refund_date,
            "notify_url": rec.notify_url,
            "notify_id": rec.notify_id,
            "outcome": "accepted",
            "success_num": sum(1 for item in rec.items if item[3] == SUCCESS),
            "items": [
                {"trade_no": t, "amount": format_amount(a), "reason": r, "code": c}
                for t, a, r, c, _ in rec.items
            ],
        }


@dataclass(slots=True)
class Notification:
    """The `batch_refund_notify` of one accepted batch and its delivery history.

    `partner` and `batch_no` name the batch (`Ledger.batches[(partner, batch_no)]`).
    """

    notify_id: str
    partner: str
    batch_no: str
    url: str
    charset: str
    sign_type: str
    created_ts: float
    attempts: int = 0
    sends: int = 0
    lost: int = 0
    duplicates: int = 0
    forged_sends: int = 0
    forged_acknowledged: int = 0
    acknowledged: bool = False
    acknowledged_at: str | None = None
    given_up: bool = False
    last_attempt_ts: float | None = None
    last_status: int | None = None
    last_error: str | None = None

    @property
    def pending(self) -> bool:
        return not (self.acknowledged or self.given_up)

    def to_json(self) -> dict[str, Any]:
        return {
            "notify_id": self.notify_id,
            "partner": self.partner,
            "batch_no": self.batch_no,
            "url": self.url,
            "sign_type": self.sign_type,
            "charset": self.charset,
            "attempts": self.attempts,
            "sent": self.sends,
            "lost": self.lost,
            "duplicates": self.duplicates,
            "forged_sent": self.forged_sends,
            "forged_acknowledged": self.forged_acknowledged,
            "acknowledged": self.acknowledged,
            "acknowledged_at": self.acknowledged_at,
            "given_up": self.given_up,
            "last_status": self.last_status,
            "last_error": self.last_error,
        }
