"""The sandbox's journal records: every change of the books is one of these.

`TradeRecord`, `RequestRecord`, `BatchRecord`, `SendRecord`, `GaveUpRecord`,
`ClockRecord` and `ExternalRefundRecord` each write themselves as one JSON
journal line (`to_json`) and are read back by `record_from_json`; fields added
later are optional on reading, so older journals replay unchanged (a batch's
items are written as `[trade_no, amount, reason, code, auto]` rows; journals
that wrote them as columns are read too). `sandbox.ledger` applies them.

A batch of the password service records the seller account that confirmed
it (`BatchRecord.seller`; its `service` says which service it came through).
A batch, an external refund and a refused request record the partner they
belong to (`partner`; a refused request only when it named a served one).
Journals written before partners were recorded hold no `partner`: their
entries are read as the default partner's (`record_from_json`'s
`default_partner`, the first partner the sandbox serves).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from sandbox.config import DEFAULT_PARTNER
from worker.mapi import format_amount

__all__ = [
    "BatchItem",
    "BatchRecord",
    "ClockRecord",
    "ExternalRefundRecord",
    "GaveUpRecord",
    "Record",
    "RequestRecord",
    "SendKind",
    "SendRecord",
    "TradeRecord",
    "record_from_json",
]

SendKind = Literal["genuine", "duplicate", "forged", "lost"]
# (trade_no, amount, reason, code, trade auto-created)
BatchItem = tuple[str, Decimal, str, str, bool]


@dataclass(frozen=True)
class TradeRecord:
    """A paid trade created or changed through the control API."""

    trade_no: str
    amount: Decimal
    status: str
    ts: float
    at: str

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "trade",
            "trade_no": self.trade_no,
            "amount": format_amount(self.amount),
            "status": self.status,
            "ts": self.ts,
            "at": self.at,
        }


@dataclass(frozen=True)
class RequestRecord:
    """A refund request answered `F` (or not at all), kept for the ledger's request log."""

    ts: float
    at: str
    service: str | None
    batch_no: str | None
    code: str
    item_count: int | None = None
    partner: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "request",
            "ts": self.ts,
            "at": self.at,
            "service": self.service,
            "partner": self.partner,
            "batch_no": self.batch_no,
            "code": self.code,
            "item_count": self.item_count,
        }


@dataclass(frozen=True)
class BatchRecord:
    """An accepted batch, with each item's outcome and the trades auto-created for it."""

    ts: float
    at: str
    service: str
    charset: str
    sign_type: str
    batch_no: str
    refund_date: str
    notify_url: str | None
    notify_id: str | None
    items: tuple[BatchItem, ...]
    auto_amount: Decimal | None
    # Seed of the `result_shapes` writer when that fault was drawn for the batch
    # (its notification then writes `result_details` in the grammar's other shapes).
    shapes: int | None = None
    partner: str = DEFAULT_PARTNER
    # Password service only: the seller account whose payment password confirmed it.
    seller: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        """(partner, batch_no): what makes a batch unique."""
        return (self.partner, self.batch_no)

    def to_json(self) -> dict[str, Any]:
        extra: dict[str, Any] = {} if self.shapes is None else {"shapes": self.shapes}
        if self.seller is not None:
            extra["seller"] = self.seller
        return {
            "type": "batch",
            "ts": self.ts,
            "at": self.at,
            "partner": self.partner,
            "service": self.service,
            "charset": self.charset,
            "sign_type": self.sign_type,
            "batch_no": self.batch_no,
            "refund_date": self.refund_date,
            "notify_url": self.notify_url,
            "notify_id": self.notify_id,
            "auto_amount": None if self.auto_amount is None else format_amount(self.auto_amount),
            "items": [[t, format_amount(a), r, c, auto] for t, a, r, c, auto in self.items],
            **extra,
        }


@dataclass(frozen=True)
class SendRecord:
    """One delivery of a notification: genuine, its duplicate, a forged copy, or a lost attempt."""

    notify_id: str
    kind: SendKind
    ts: float
    at: str
    status: int | None = None
    acknowledged: bool = False
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "send",
            "notify_id": self.notify_id,
            "kind": self.kind,
            "ts": self.ts,
            "at": self.at,
            "status": self.status,
            "acknowledged": self.acknowledged,
            "error": self.error,
        }


@dataclass(frozen=True)
class GaveUpRecord:
    """The resend schedule ran out without a `success`."""

    notify_id: str
    ts: float
    at: str

    def to_json(self) -> dict[str, Any]:
        return {"type": "gave_up", "notify_id": self.notify_id, "ts": self.ts, "at": self.at}


@dataclass(frozen=True)
class ClockRecord:
    """The sandbox clock was shifted."""

    offset_seconds: float
    ts: float

    def to_json(self) -> dict[str, Any]:
        return {"type": "clock", "offset_seconds": self.offset_seconds, "ts": self.ts}


@dataclass(frozen=True)
class ExternalRefundRecord:
    """Refunds of one trade made outside any worker batch (as the merchant console would).

    One refund of `amount` per batch number in `batch_nos` (numbers the
    sandbox made). `auto_amount` is the paid amount of the trade when it was
    auto-created for these refunds, else None. `partner`: whose console made them.
    """

    trade_no: str
    amount: Decimal
    batch_nos: tuple[str, ...]
    reason: str
    ts: float
    at: str
    auto_amount: Decimal | None = None
    partner: str = DEFAULT_PARTNER

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "external",
            "partner": self.partner,
            "trade_no": self.trade_no,
            "amount": format_amount(self.amount),
            "batch_nos": list(self.batch_nos),
            "reason": self.reason,
            "ts": self.ts,
            "at": self.at,
            "auto_amount": None if self.auto_amount is None else format_amount(self.auto_amount),
        }


Record = (
    TradeRecord
    | RequestRecord
    | BatchRecord
    | SendRecord
    | GaveUpRecord
    | ClockRecord
    | ExternalRefundRecord
)


def record_from_json(data: Mapping[str, Any], *, default_partner: str = DEFAULT_PARTNER) -> Record:
    """Rebuild a record from its journal line; KeyError/ValueError/TypeError when it is damaged.

    A batch or external refund without `partner` (an older journal) is `default_partner`'s.
    """
    kind = data["type"]
    if kind == "trade":
        return TradeRecord(
            trade_no=str(data["trade_no"]),
            amount=Decimal(data["amount"]),
            status=str(data["status"]),
            ts=float(data["ts"]),
            at=str(data["at"]),
        )
    if kind == "request":
        return RequestRecord(
            ts=float(data["ts"]),
            at=str(data["at"]),
            service=data["service"],
            batch_no=data["batch_no"],
            code=str(data["code"]),
            item_count=data.get("item_count"),
            partner=None if data.get("partner") is None else str(data["partner"]),
        )
    if kind == "batch":
        auto_amount = data.get("auto_amount")
        return BatchRecord(
            ts=float(data["ts"]),
            at=str(data["at"]),
            service=str(data["service"]),
            charset=str(data["charset"]),
            sign_type=str(data["sign_type"]),
            batch_no=str(data["batch_no"]),
            refund_date=str(data["refund_date"]),
            notify_url=data["notify_url"],
            notify_id=data["notify_id"],
            items=_items_from_json(data["items"]),
            auto_amount=None if auto_amount is None else Decimal(auto_amount),
            shapes=None if data.get("shapes") is None else int(data["shapes"]),
            partner=str(data.get("partner") or default_partner),
            seller=None if data.get("seller") is None else str(data["seller"]),
        )
    if kind == "external":
        auto_amount = data.get("auto_amount")
        return ExternalRefundRecord(
            trade_no=str(data["trade_no"]),
            amount=Decimal(data["amount"]),
            batch_nos=tuple(str(b) for b in data["batch_nos"]),
            reason=str(data["reason"]),
            ts=float(data["ts"]),
            at=str(data["at"]),
            auto_amount=None if auto_amount is None else Decimal(auto_amount),
            partner=str(data.get("partner") or default_partner),
        )
    if kind == "send":
        return SendRecord(
            notify_id=str(data["notify_id"]),
            kind=data["kind"],
            ts=float(data["ts"]),
            at=str(data["at"]),
            status=data.get("status"),
            acknowledged=bool(data.get("acknowledged")),
            error=data.get("error"),
        )
    if kind == "gave_up":
        return GaveUpRecord(
            notify_id=str(data["notify_id"]), ts=float(data["ts"]), at=str(data["at"])
        )
    if kind == "clock":
        return ClockRecord(offset_seconds=float(data["offset_seconds"]), ts=float(data["ts"]))
    raise ValueError(f"unknown record type {str(kind)[:20]!r}")


def _items_from_json(data: Any) -> tuple[BatchItem, ...]:
    """Read the `[t, a, r, c, auto]` rows, or the columns some older journals hold.

    Columns: `trade_no`, `amount` and `code` comma-joined strings (or lists),
    `reason` a list, `auto` one `0`/`1` per item.
    """
    if isinstance(data, list):
        return tuple((str(t), Decimal(a), str(r), str(c), bool(auto)) for t, a, r, c, auto in data)
    trade_nos, amounts, codes = (
        column.split(",") if isinstance(column, str) else column
        for column in (data["trade_no"], data["amount"], data["code"])
    )
    reasons, autos = data["reason"], data["auto"]
    if not isinstance(reasons, list) or not isinstance(autos, str):
        raise TypeError("batch item columns are damaged")
    return tuple(
        (str(t), Decimal(a), str(r), str(c), auto == "1")
        for t, a, r, c, auto in zip(trade_nos, amounts, reasons, codes, autos, strict=True)
    )
