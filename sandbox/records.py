"""The sandbox's journal records: every change of the books is one of these.

`TradeRecord`, `RequestRecord`, `BatchRecord`, `SendRecord`, `GaveUpRecord`,
`ClockRecord` and `ExternalRefundRecord` each write themselves as one JSON
journal line (`to_json`) and are read back by `record_from_json`; fields added
later are optional on reading, so older journals replay unchanged.
`sandbox.ledger` applies them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal, NamedTuple

from worker.mapi import format_amount

__all__ = [
    "BatchColumns",
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
    "batch_columns",
    "record_from_json",
]

SendKind = Literal["genuine", "duplicate", "forged", "lost"]


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

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "request",
            "ts": self.ts,
            "at": self.at,
            "service": self.service,
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
    # (trade_no, amount, reason, code, trade auto-created)
    items: tuple[tuple[str, Decimal, str, str, bool], ...]
    auto_amount: Decimal | None
    # Seed of the `result_shapes` writer when that fault was drawn for the batch
    # (its notification then writes `result_details` in the grammar's other shapes).
    shapes: int | None = None

    def to_json(self, columns: BatchColumns | None = None) -> dict[str, Any]:
        """The journal line; `columns` when the caller already has `batch_columns(items)`."""
        extra = {} if self.shapes is None else {"shapes": self.shapes}
        return {
            "type": "batch",
            "ts": self.ts,
            "at": self.at,
            "service": self.service,
            "charset": self.charset,
            "sign_type": self.sign_type,
            "batch_no": self.batch_no,
            "refund_date": self.refund_date,
            "notify_url": self.notify_url,
            "notify_id": self.notify_id,
            "auto_amount": None if self.auto_amount is None else format_amount(self.auto_amount),
            "items": _items_to_json(batch_columns(self.items) if columns is None else columns),
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
    auto-created for these refunds, else None.
    """

    trade_no: str
    amount: Decimal
    batch_nos: tuple[str, ...]
    reason: str
    ts: float
    at: str
    auto_amount: Decimal | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "external",
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


def record_from_json(data: Mapping[str, Any]) -> Record:
    """Rebuild a record from its journal line; KeyError/ValueError/TypeError when it is damaged."""
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


BatchItem = tuple[str, Decimal, str, str, bool]


class BatchColumns(NamedTuple):
    """A batch's items as columns, amounts written out (`batch_columns`)."""

    trade_nos: tuple[str, ...]
    amounts: tuple[str, ...]
    reasons: tuple[str, ...]
    codes: tuple[str, ...]
    autos: tuple[bool, ...]


def batch_columns(items: Sequence[BatchItem]) -> BatchColumns:
    """Columns of a batch's items; the journal line and `result_details` both read them.

    Amounts in the books are Decimals quantized to cents, so `str` writes
    exactly two decimals (and is much cheaper than `format_amount`'s checks).
    """
    if not items:
        return BatchColumns((), (), (), (), ())
    trade_nos, amounts, reasons, codes, autos = zip(*items, strict=True)
    return BatchColumns(trade_nos, tuple(map(str, amounts)), reasons, codes, autos)


def _items_to_json(columns: BatchColumns) -> dict[str, Any]:
    """The items of a batch as columns, the cheap way to write 1000 of them per line.

    `trade_no`, `amount` and `code` are comma-joined strings (digits, amounts
    and upper-case codes hold no comma; a column that does is written as a
    list instead), `reason` is a list, `auto` one `0`/`1` per item.
    """
    return {
        "trade_no": _joined(columns.trade_nos),
        "amount": _joined(columns.amounts),
        "reason": list(columns.reasons),
        "code": _joined(columns.codes),
        "auto": "".join(["1" if auto else "0" for auto in columns.autos]),
    }


def _joined(values: Sequence[str]) -> str | list[str]:
    text = ",".join(values)
    return text if text.count(",") == len(values) - 1 else list(values)


def _items_from_json(data: Any) -> tuple[BatchItem, ...]:
    """Read `_items_to_json`'s columns, or the older list of `[t, a, r, c, auto]` rows."""
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
