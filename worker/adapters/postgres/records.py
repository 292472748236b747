"""The plain records the ledger's statements take and return."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any


@dataclass(frozen=True, slots=True)
class NewRefund:
    refund_id: str
    event_id: str
    trade_no: str | None
    amount: Decimal
    reason: str | None
    trade_amount: Decimal | None
    order_id: str | None
    metadata: Mapping[str, Any] | None
    requested_at: datetime | None
    content_hash: str
    state: str  # 'pending' or 'rejected'
    code: str | None
    partner: str
    channel: str = "batch"
    out_trade_no: str | None = None
    auth_no: str | None = None
    out_request_no: str | None = None  # the OpenAPI channels only, derived from refund_id


@dataclass(frozen=True, slots=True)
class PendingRefund:
    refund_id: str
    trade_no: str
    amount: Decimal
    reason: str | None
    received_at: datetime
    batch_attempts: int
    partner: str


@dataclass(frozen=True, slots=True)
class BatchItem:
    refund_id: str
    trade_no: str
    amount: Decimal
    reason_sent: str
    batch_attempts: int = 0


@dataclass(frozen=True, slots=True)
class Batch:
    batch_no: str
    batch_day: date
    state: str
    item_count: int
    attempts: int
    maybe_sent: bool
    next_attempt_at: datetime | None
    created_at: datetime
    partner: str
    service: str = "nopwd"


@dataclass(frozen=True, slots=True)
class Completion:
    """A refund that reached a final state, with what its refund.completed event needs."""

    refund_id: str
    trade_no: str | None
    amount: Decimal
    order_id: str | None
    metadata: Mapping[str, Any] | None
    status: str
    code: str
    batch_no: str | None
    completed_at: datetime
    partner: str | None = None
    channel: str = "batch"
    # The OpenAPI channels: `out_trade_no`, `auth_no`, `out_request_no`, `operation_id`,
    # `gmt_refund_pay` (None when unknown).
    gateway_ids: Mapping[str, str | None] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BatchMember:
    refund_id: str
    trade_no: str
    amount: Decimal
    state: str


@dataclass(frozen=True, slots=True)
class BatchView:
    """What reconciliation needs to know of a batch."""

    batch_no: str
    batch_day: date
    state: str
    attempts: int
    maybe_sent: bool
    operator_flag: str | None
    last_attempt_at: datetime | None
    created_at: datetime
    queries: int
    partner: str
    service: str = "nopwd"


@dataclass(frozen=True, slots=True)
class QueryRecord:
    asked_at: datetime
    answer: str  # found | not_found | refused | no_answer
    trade_nos: tuple[str, ...]  # the trades the answer showed under this batch_no
    complete: bool = True  # every entry of the answer was read
