"""`refund.requested.v1`, the event the worker consumes (README "Events").

`parse_refund_requested` turns one message body into a `RefundRequest`:
strict decoding (`worker.contracts.decoding`), the schema file
(`worker.contracts.validation`), then the rules the schema cannot state:
`metadata` nests at most `MAX_METADATA_DEPTH` levels, and `amount` and
`trade_amount` are greater than 0 and at most 100000000.00
(`worker.contracts.amounts`). The schema states which fields each channel needs:
`trade_no` on the batch channel (no `channel`, or `batch`), `trade_no` or
`out_trade_no` on `trade`, `auth_no` (and no trade number) on `coupon`.

It raises nothing but `EventValidationError`, whose `reason` is one of the
`REASON_*` codes of `worker.contracts.reasons` (the dead-letter header) and
whose `detail` names the field and the rule.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

from worker.contracts.amounts import amount_in_range, money_text
from worker.contracts.decoding import decode_event
from worker.contracts.reasons import REASON_INVALID_ENCODING, REASON_SCHEMA_VIOLATION
from worker.contracts.rfc3339 import parse_rfc3339
from worker.contracts.schema_files import REFUND_REQUESTED_SCHEMA
from worker.contracts.validation import schema_problem
from worker.domain.errors import EventValidationError

__all__ = [
    "BATCH",
    "CHANNELS",
    "COUPON",
    "MAX_METADATA_DEPTH",
    "OPENAPI_CHANNELS",
    "TRADE",
    "RefundRequest",
    "parse_refund_requested",
]

MAX_METADATA_DEPTH: Final = 32

# The channels a refund can be made through (`docs/openapi.md`): the mapi batch service
# (the default) and the two OpenAPI services, one refund per request.
BATCH: Final = "batch"
TRADE: Final = "trade"
COUPON: Final = "coupon"
CHANNELS: Final = (BATCH, TRADE, COUPON)
OPENAPI_CHANNELS: Final = frozenset({TRADE, COUPON})


@dataclass(frozen=True, slots=True)
class RefundRequest:
    """One valid `refund.requested` event.

    `amount` and `trade_amount` are exact Decimals with two decimals
    (``"12.5"`` becomes ``Decimal("12.50")``); an optional field sent as
    ``null`` is None, the same as absent.
    """

    event_id: str
    refund_id: str
    trade_no: str | None  # always set on the batch channel
    amount: Decimal
    reason: str | None = None
    trade_amount: Decimal | None = None
    order_id: str | None = None
    metadata: dict[str, Any] | None = None
    requested_at: datetime | None = None
    merchant: str | None = None  # as the request names it; resolved by intake
    channel: str = BATCH  # batch, trade or coupon (`CHANNELS`)
    out_trade_no: str | None = None  # channel trade only
    auth_no: str | None = None  # channel coupon only (and required there)

    @property
    def is_openapi(self) -> bool:
        """Whether the refund is made by one OpenAPI request (channel trade or coupon)."""
        return self.channel in OPENAPI_CHANNELS

    @property
    def payment_key(self) -> str:
        """What identifies the payment refunded: the trade number, else the merchant's
        order number (channel trade), else the red envelope's fund order (channel coupon).
        Intake serialises requests of one payment on it."""
        if self.trade_no:
            return self.trade_no
        if self.out_trade_no:
            return f"out_trade_no:{self.out_trade_no}"
        return f"auth_no:{self.auth_no}"

    def content(self) -> dict[str, Any]:
        """What makes two requests "the same refund" (the duplicate rule of README, "Events").

        It is every field the refund is made of: `refund_id`, `trade_no`,
        `amount`, `reason`, `trade_amount`, `order_id`, `metadata`. `event_id`
        and `requested_at` describe one delivery, not the refund, so a re-send
        with a new event id or timestamp is still a duplicate; a different
        amount, reason or metadata is a conflict. Amounts are compared as
        money (``"12.5"`` equals ``"12.50"``), metadata by value (key order
        does not matter). The merchant is compared by intake, once the name the
        request gives it is resolved to a partner id (`worker/services/intake.py`).

        A refund of an OpenAPI channel also counts its `channel`, `out_trade_no` and
        `auth_no`; a batch refund's content is exactly what it was before channels
        existed, so hashes stored then still match their re-deliveries.
        """
        content: dict[str, Any] = {
            "refund_id": self.refund_id,
            "trade_no": self.trade_no,
            "amount": money_text(self.amount),
            "reason": self.reason,
            "trade_amount": None if self.trade_amount is None else money_text(self.trade_amount),
            "order_id": self.order_id,
            "metadata": self.metadata,
        }
        if self.is_openapi:
            content["channel"] = self.channel
            content["out_trade_no"] = self.out_trade_no
            content["auth_no"] = self.auth_no
        return content

    def content_hash(self) -> str:
        """SHA-256 (hex) of `content()` as canonical JSON (sorted keys, no spaces, UTF-8).

        Stored with the refund; the definition must stay stable, or stored
        refunds would conflict with their own re-deliveries.
        """
        canonical = json.dumps(
            self.content(),
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
            allow_nan=False,
        )
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _depth(value: object) -> int:
    """Nesting depth of a JSON value (a scalar is 0, `{}` is 1), without recursion."""
    deepest = 0
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, level + 1)
        if deepest > MAX_METADATA_DEPTH:
            return deepest
        stack.extend((child, level + 1) for child in children)
    return deepest


def parse_refund_requested(body: bytes) -> RefundRequest:
    """Validate one `refund.requested` message body and return it typed.

    Raises `EventValidationError` (and nothing else, whatever the bytes) with
    reason `too_large`, `invalid_encoding`, `invalid_json`,
    `schema_violation` or `amount_out_of_range`.
    """
    if not isinstance(body, bytes | bytearray | memoryview):
        raise EventValidationError(
            REASON_INVALID_ENCODING, f"body must be bytes, got {type(body).__name__}"
        )
    document = decode_event(bytes(body))
    problem = schema_problem(REFUND_REQUESTED_SCHEMA, document)
    if problem is not None:
        raise EventValidationError(REASON_SCHEMA_VIOLATION, problem)
    metadata = document.get("metadata")
    if metadata and _depth(metadata) > MAX_METADATA_DEPTH:
        raise EventValidationError(
            REASON_SCHEMA_VIOLATION, f"metadata: nests deeper than {MAX_METADATA_DEPTH} levels"
        )
    trade_amount = document.get("trade_amount")
    requested_at = document.get("requested_at")
    return RefundRequest(
        event_id=document["event_id"],
        refund_id=document["refund_id"],
        trade_no=document.get("trade_no"),
        amount=amount_in_range("amount", document["amount"]),
        reason=document.get("reason"),
        trade_amount=None
        if trade_amount is None
        else amount_in_range("trade_amount", trade_amount),
        order_id=document.get("order_id"),
        metadata=metadata,
        requested_at=None if requested_at is None else parse_rfc3339(requested_at),
        merchant=document.get("merchant"),
        channel=document.get("channel") or BATCH,
        out_trade_no=document.get("out_trade_no"),
        auth_no=document.get("auth_no"),
    )
