"""`refund.completed.v1`, the event the worker publishes (README "Events").

One per refund that reached its final state. Its `event_id` is derived from
`refund_id` (`completed_event_id`), so every delivery of one refund's outcome
carries the same id and consumers deduplicate on it.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

from worker.contracts.amounts import amount_in_range, money_text
from worker.contracts.reasons import REASON_SCHEMA_VIOLATION
from worker.contracts.rfc3339 import utc_text
from worker.contracts.schema_files import REFUND_COMPLETED_SCHEMA
from worker.contracts.validation import schema_problem
from worker.domain.errors import EventValidationError

__all__ = [
    "COMPLETED_EVENT_NAMESPACE",
    "OPENAPI_ID_FIELDS",
    "build_refund_completed",
    "completed_event_id",
    "validate_refund_completed",
]

# `refund.completed` event ids are uuid5(COMPLETED_EVENT_NAMESPACE, refund_id).
# The namespace is itself uuid5(NAMESPACE_URL, "urn:alipay-refund-worker:refund.completed"),
# so any consumer can recompute it. Changing it would give every refund a new
# event identity: never change it.
COMPLETED_EVENT_NAMESPACE: Final = uuid.UUID("b3bdf6be-c59a-54ea-aa7c-d2c92e005903")

# What an OpenAPI refund's event may carry beyond the batch fields, when known.
OPENAPI_ID_FIELDS: Final = (
    "out_request_no",
    "out_trade_no",
    "auth_no",
    "operation_id",
    "gmt_refund_pay",
)


def completed_event_id(refund_id: str) -> str:
    """The `event_id` of the `refund.completed` event of `refund_id`: the same on every call."""
    return str(uuid.uuid5(COMPLETED_EVENT_NAMESPACE, refund_id))


def build_refund_completed(
    *,
    refund_id: str,
    trade_no: str | None,
    amount: Decimal,
    order_id: str | None,
    metadata: Mapping[str, Any] | None,
    status: str,
    code: str,
    batch_no: str | None,
    completed_at: datetime,
    merchant: str | None = None,
    channel: str = "batch",
    gateway_ids: Mapping[str, str | None] | None = None,
) -> dict[str, object]:
    """The `refund.completed` event for one refund's final state, built from typed fields.

    `amount` is written with two decimals, `completed_at` in UTC (`...Z`). A batch
    refund's event is what it was before channels existed (no `channel`, `trade_no`
    always there); an OpenAPI refund's (`channel` `trade` or `coupon`) carries its
    `channel` and, from `gateway_ids`, those of `OPENAPI_ID_FIELDS` that are known
    (`out_request_no`, `out_trade_no`, `auth_no`, `operation_id`, `gmt_refund_pay`);
    `trade_no` is left out when unknown.
    Raises ValueError for an amount with more than two decimals or a naive
    `completed_at`.

    The event is not checked against the schema here: this runs for every refund that
    reaches a final state, inside the transaction that records it, and its fields come
    from the ledger, which took them from validated requests and the gateway. The tests
    validate what it builds, in every shape the ledger gives it, against `schemas/`
    (`validate_refund_completed`, kept for them and for consumers' checks).
    """
    event: dict[str, object] = {
        "event_id": completed_event_id(refund_id),
        "refund_id": refund_id,
        "trade_no": trade_no,
        "amount": money_text(amount),
        "order_id": order_id,
        "metadata": None if metadata is None else dict(metadata),
        "status": status,
        "code": code,
        "batch_no": batch_no,
        "completed_at": utc_text(completed_at),
    }
    if merchant is not None:
        event["merchant"] = merchant
    if channel != "batch":
        event["channel"] = channel
        if trade_no is None:
            del event["trade_no"]
        for name in OPENAPI_ID_FIELDS:
            value = (gateway_ids or {}).get(name)
            if value:
                event[name] = value
    return event


def validate_refund_completed(event: Mapping[str, object]) -> None:
    """Raise `EventValidationError` unless `event` is a valid `refund.completed.v1`.

    Beyond the schema: `amount` is greater than 0 and at most 100000000.00 and
    `event_id` is the one `completed_event_id` derives from `refund_id`.
    """
    document = dict(event)
    problem = schema_problem(REFUND_COMPLETED_SCHEMA, document)
    if problem is not None:
        raise EventValidationError(REASON_SCHEMA_VIOLATION, problem)
    amount_in_range("amount", str(document["amount"]))
    expected = completed_event_id(str(document["refund_id"]))
    if document["event_id"] != expected:
        raise EventValidationError(
            REASON_SCHEMA_VIOLATION,
            f"event_id: must be {expected}, the id derived from refund_id",
        )
