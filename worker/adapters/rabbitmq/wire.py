"""The wire form of the bus's messages: pika frames to and from the plain types of ports.

`delivery_from` turns what pika hands the consumer into a `Delivery`;
`outgoing_for` and `dead_letter_outgoing` turn an `OutMessage` or a `DeadLetter`
into what the publisher puts on the wire. Every message goes out persistent. A dead
letter is the original message unchanged (body, message_id, content type, kept
properties, headers) plus the four `x-refund-*` headers below. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pika

from worker.adapters.rabbitmq.topology import Topology
from worker.services.ports import DeadLetter, Delivery, OutMessage

HEADER_REASON = "x-refund-dead-letter-reason"
HEADER_DETAIL = "x-refund-dead-letter-detail"
HEADER_DEAD_LETTERED_AT = "x-refund-dead-lettered-at"
HEADER_ORIGINAL_ROUTING_KEY = "x-refund-original-routing-key"

# Dead-letter details are for a human reading the queue; keep headers small.
DETAIL_MAX_BYTES = 1024
PERSISTENT = 2

# The properties a delivery keeps for its dead letter (see `Delivery`).
_KEPT_PROPERTIES = (
    "content_encoding",
    "correlation_id",
    "reply_to",
    "timestamp",
    "type",
    "app_id",
    "priority",
)


@dataclass(frozen=True)
class Outgoing:
    """A fully resolved publish: what goes on the wire."""

    exchange: str
    routing_key: str
    body: bytes
    properties: Any  # pika.BasicProperties


def delivery_from(method: Any, properties: Any, body: bytes) -> Delivery:
    """Turn pika's (method, properties, body) into a `Delivery`."""
    kept = {
        name: value
        for name in _KEPT_PROPERTIES
        if (value := getattr(properties, name, None)) is not None
    }
    return Delivery(
        delivery_tag=int(method.delivery_tag),
        body=bytes(body),
        message_id=properties.message_id,
        headers=dict(properties.headers or {}),
        redelivered=bool(method.redelivered),
        content_type=properties.content_type,
        routing_key=str(method.routing_key),
        properties=kept,
    )


def outgoing_for(message: OutMessage, default_exchange: str) -> Outgoing:
    """The wire form of an `OutMessage`: persistent, with its id and content type."""
    properties = pika.BasicProperties(
        delivery_mode=PERSISTENT,
        content_type=message.content_type,
        message_id=message.message_id,
        headers=dict(message.headers) or None,
    )
    exchange = default_exchange if message.exchange is None else message.exchange
    return Outgoing(exchange, message.routing_key, message.body, properties)


def truncate_utf8(text: str, max_bytes: int = DETAIL_MAX_BYTES) -> str:
    """`text` cut to at most `max_bytes` UTF-8 bytes, marked with an ellipsis if cut."""
    raw = text.encode("utf-8")
    if len(raw) <= max_bytes:
        return text
    cut = raw[: max_bytes - len("…".encode())].decode("utf-8", errors="ignore")
    return cut + "…"


def rfc3339(moment: datetime) -> str:
    """UTC time as RFC 3339 with milliseconds and a `Z`."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def dead_letter_outgoing(letter: DeadLetter, topology: Topology, now: datetime) -> Outgoing:
    """The republished form of a dead letter.

    The body is the original bytes; message_id, content_type, the kept properties
    and the headers are the original ones, plus the four `x-refund-*` headers that
    say why, when, and under which routing key the message arrived.
    """
    original = letter.delivery
    if not letter.reason:
        raise ValueError("a dead letter needs a reason code")
    headers: dict[str, object] = dict(original.headers)
    headers[HEADER_REASON] = letter.reason
    headers[HEADER_DETAIL] = truncate_utf8(letter.detail)
    headers[HEADER_DEAD_LETTERED_AT] = rfc3339(now)
    headers[HEADER_ORIGINAL_ROUTING_KEY] = original.routing_key
    properties = pika.BasicProperties(
        delivery_mode=PERSISTENT,
        content_type=original.content_type,
        message_id=original.message_id,
        headers=headers,
        **original.properties,
    )
    return Outgoing(topology.dead_letter_exchange, original.routing_key, original.body, properties)
