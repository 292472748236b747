"""Plain types the services exchange with their adapters (no driver imported here).

Adapters (the gateway HTTP client, PostgreSQL, RabbitMQ) implement these
protocols and build these values; services depend on nothing else of theirs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol

from worker.domain.policy.openapi import SendOutcome
from worker.openapi import Classification

__all__ = [
    "DeadLetter",
    "Delivery",
    "OpenApiGateway",
    "OpenApiReply",
    "OutMessage",
    "QueriedItem",
    "QueryResult",
    "RefundQuery",
]


# --- the bus (built and consumed by worker.adapters.rabbitmq) -----------------------


@dataclass(frozen=True)
class Delivery:
    """One message taken from a queue, not yet acked.

    `properties` keeps the other AMQP properties (correlation_id, timestamp, type,
    app_id, content_encoding, reply_to, priority) so a dead letter can republish the
    message as it came. `expiration` and `user_id` are deliberately not kept: the
    first would expire the copy in the dead-letter queue, the second is checked by
    the broker against the publishing user.
    """

    delivery_tag: int
    body: bytes
    message_id: str | None
    headers: Mapping[str, object]
    redelivered: bool
    content_type: str | None
    routing_key: str
    properties: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class DeadLetter:
    """A delivery to move to the dead-letter queue, with a stable reason code.

    `reason` is a short code (`invalid_json`, `schema_violation`,
    `conflicting_duplicate`, ...); `detail` a human sentence, cut to about 1 KB.
    """

    delivery: Delivery
    reason: str
    detail: str


@dataclass(frozen=True)
class OutMessage:
    """A message to publish; always persistent (delivery_mode 2).

    `exchange=None` means the bus exchange of the publisher's topology.
    """

    routing_key: str
    body: bytes
    message_id: str
    headers: Mapping[str, object] = field(default_factory=dict)
    exchange: str | None = None
    content_type: str = "application/json"


# --- the gateway's refund query (built by worker.adapters.gateway) ------------------


@dataclass(frozen=True, slots=True)
class QueriedItem:
    """One refund the gateway lists in a `refund_fastpay_query` answer."""

    batch_no: str | None
    trade_no: str
    code: str
    amount: Decimal | None
    raw: str = ""


@dataclass(frozen=True, slots=True)
class QueryResult:
    """What one `refund_fastpay_query` established (never more than the answer proves).

    `answer` is `found` (items listed), `not_found` (`REFUND_NOT_EXIST`), `refused`
    (the query itself was refused: `error_code` says why) or `no_answer` (network
    trouble, an error page, an unreadable body: nothing was learnt). A `found` answer
    is `complete` only when every entry in it could be read; a partial one still
    proves what it lists, but never that a trade is absent.
    """

    answer: str
    error_code: str | None = None
    items: tuple[QueriedItem, ...] = ()
    detail: str = ""
    complete: bool = True


class RefundQuery(Protocol):
    def query_refunds(
        self, *, batch_no: str | None = None, trade_no: str | None = None
    ) -> QueryResult: ...


# The query client of a merchant, by partner id; None for a merchant not served any more.
RefundQueries = Callable[[str], RefundQuery | None]


# --- the OpenAPI gateway (built by worker.adapters.gateway.openapi) ----------------


@dataclass(frozen=True, slots=True)
class OpenApiReply:
    """What one OpenAPI call did: the outcome, the raw answer (when answered), its class.

    `classification` is set exactly when `outcome` is ANSWERED (an unverifiable answer is
    classified UNKNOWN); `reason` names what went wrong otherwise, for logs.
    """

    outcome: SendOutcome
    raw: str | None = None
    classification: Classification | None = None
    reason: str = ""


class OpenApiGateway(Protocol):
    def call(
        self, params: Mapping[str, str], *, public_key_pem: str | bytes, partner: str
    ) -> OpenApiReply: ...
