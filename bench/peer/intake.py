"""The peer's intake: one dramatiq actor call and one transaction per refund.requested.

Run with `dramatiq bench.peer.intake`. The order system publishes plain JSON events, so
the encoder hands each one to the `store_refund` actor as its argument.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import dramatiq
import jsonschema
import psycopg
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.encoder import Encoder

QUEUE = os.environ.get("PEER_INTAKE_QUEUE", "peer-intake")
SCHEMA = json.loads(
    (Path(__file__).resolve().parents[2] / "schemas" / "refund.requested.v1.json").read_text()
)
VALIDATOR = jsonschema.Draft202012Validator(
    SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
)


class EventEncoder(Encoder):
    """dramatiq messages as usual; a bare refund.requested event becomes a `store_refund` call."""

    def encode(self, data: dict[str, Any]) -> bytes:
        return json.dumps(data, separators=(",", ":")).encode()

    def decode(self, data: bytes) -> dict[str, Any]:
        obj = json.loads(data)
        if isinstance(obj, dict) and "actor_name" in obj:
            return obj
        return {
            "queue_name": QUEUE,
            "actor_name": "store_refund",
            "args": [obj],
            "kwargs": {},
            "options": {},
            "message_id": str(uuid.uuid4()),
            "message_timestamp": int(time.time() * 1000),
        }


dramatiq.set_encoder(EventEncoder())
dramatiq.set_broker(RabbitmqBroker(url=os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1")))
_local = threading.local()


def _conn() -> psycopg.Connection[Any]:
    conn = getattr(_local, "conn", None)
    if conn is None or conn.closed:
        conn = _local.conn = psycopg.connect(os.environ["DATABASE_URL"])
    return conn


@dramatiq.actor(queue_name=QUEUE, max_retries=3)
def store_refund(event: dict[str, Any]) -> None:
    VALIDATOR.validate(event)
    with _conn().transaction():
        _conn().execute(
            "INSERT INTO peer_refunds (refund_id, event_id, trade_no, amount, reason, order_id)"
            " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (refund_id) DO NOTHING",
            (
                event["refund_id"],
                event["event_id"],
                event["trade_no"],
                event["amount"],
                event.get("reason"),
                event.get("order_id"),
            ),
        )
