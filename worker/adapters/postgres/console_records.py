"""The records the operator console's reads return (`console_reads`, `console_history`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any


@dataclass(frozen=True, slots=True)
class StateCount:
    """How many refunds (or batches, or notifications) of a merchant are in a state;
    `oldest_seconds`: the age of the oldest of them, for states in which they wait."""

    merchant: str
    state: str
    count: int
    oldest_seconds: float | None


@dataclass(frozen=True, slots=True)
class FlaggedBatch:
    batch_no: str
    merchant: str
    state: str
    flag: str
    flagged_at: datetime | None
    last_error: str | None


@dataclass(frozen=True, slots=True)
class Halt:
    """A merchant's submission stopped after a configuration error."""

    merchant: str
    reason: str
    set_at: datetime


@dataclass(frozen=True, slots=True)
class Overview:
    refunds: list[StateCount]
    batches: list[StateCount]
    flagged: list[FlaggedBatch]
    halts: list[Halt]
    unapplied_notifications: list[StateCount]
    outbox: int


@dataclass(frozen=True, slots=True)
class Hit:
    """One thing the search text names: kind is `refund`, `batch` or `trade`."""

    kind: str
    key: str
    summary: str


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    at: datetime
    kind: str  # received, batch, attempt, notification, query, decision, audit, ...
    title: str
    detail: str


@dataclass(frozen=True, slots=True)
class BatchSummary:
    """A batch a refund went through."""

    batch_no: str
    state: str
    attempts: int
    last_code: str | None
    flag: str | None
    created_at: datetime
    reason_sent: str


@dataclass(frozen=True, slots=True)
class RefundHistory:
    refund: dict[str, Any]
    batches: list[BatchSummary]
    timeline: list[TimelineEntry]


@dataclass(frozen=True, slots=True)
class BatchItemRow:
    refund_id: str
    trade_no: str
    order_id: str | None
    amount: Decimal
    reason_sent: str
    state: str
    code: str | None


@dataclass(frozen=True, slots=True)
class BatchHistory:
    batch: dict[str, Any]
    items: list[BatchItemRow]
    timeline: list[TimelineEntry]


@dataclass(frozen=True, slots=True)
class TradeRefund:
    refund_id: str
    merchant: str
    amount: Decimal
    state: str
    code: str | None
    batch_no: str | None
    received_at: datetime
    completed_at: datetime | None


@dataclass(frozen=True, slots=True)
class TradeHistory:
    """A trade's refunds here; `refund_count` and `refunded_total` are what counts against
    its limits at the gateway (`refunds.trade_tallies`: refunds not rejected or failed,
    and refunds the gateway reported under batch numbers this worker never used)."""

    trade_no: str
    refunds: list[TradeRefund]
    refund_count: int
    refunded_total: Decimal
    timeline: list[TimelineEntry]
