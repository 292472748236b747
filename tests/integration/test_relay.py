"""The outbox relay against real PostgreSQL and RabbitMQ.

Each test has its own database (fixture `db`) and its own exchange and queue
names, removed afterwards.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator

import pytest

from worker.adapters.postgres import ledger
from worker.adapters.postgres.pool import Database
from worker.adapters.rabbitmq import COMPLETED, BusConnection, Publisher, Topology, delete_topology
from worker.domain.errors import BusUnavailable
from worker.services.relay import relay_once

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")


@pytest.fixture
def topology() -> Iterator[Topology]:
    topo = Topology.for_exchange(f"test-relay-{uuid.uuid4().hex[:8]}")
    with BusConnection(AMQP_URL) as bus:
        bus.declare_bus(topo)
    yield topo
    delete_topology(AMQP_URL, topo)


@pytest.fixture
def bus() -> Iterator[BusConnection]:
    with BusConnection(AMQP_URL) as connection:
        yield connection


def _fill(db: Database, count: int) -> list[str]:
    events = [
        (f"ev-{n:05d}", ledger.COMPLETED_ROUTING_KEY, json.dumps({"refund_id": f"r-{n}"}))
        for n in range(count)
    ]
    with db.transaction() as conn:
        ledger.insert_outbox(conn, events)
    return [e[0] for e in events]


def _outbox_count(db: Database) -> int:
    with db.transaction() as conn:
        row = conn.execute("SELECT count(*) FROM outbox").fetchone()
    assert row is not None
    return int(row[0])


def test_relay_publishes_oldest_first_and_empties_the_outbox(
    db: Database, topology: Topology, bus: BusConnection
) -> None:
    queue = f"{topology.exchange}.observer"
    channel = bus.channel()
    channel.queue_declare(queue, durable=True)
    channel.queue_bind(queue, topology.exchange, routing_key=COMPLETED)
    event_ids = _fill(db, 1500)
    publisher = Publisher(bus, topology)

    assert relay_once(db, publisher, limit=1000) == 1000
    assert _outbox_count(db) == 500
    assert relay_once(db, publisher, limit=1000) == 500
    assert relay_once(db, publisher, limit=1000) == 0
    assert _outbox_count(db) == 0

    received = []
    while True:
        method, properties, body = channel.basic_get(queue, auto_ack=True)
        if method is None:
            break
        received.append((properties.message_id, json.loads(body)["refund_id"]))
    assert [r[0] for r in received] == event_ids
    assert received[-1][1] == "r-1499"
    channel.queue_delete(queue)


def test_rows_the_broker_did_not_take_stay_in_the_outbox(
    db: Database, topology: Topology, bus: BusConnection
) -> None:
    # No queue is bound: the mandatory publish comes back and the batch fails.
    _fill(db, 20)
    with pytest.raises(BusUnavailable, match="unroutable"):
        relay_once(db, Publisher(bus, topology), limit=1000)
    assert _outbox_count(db) == 20


def test_relays_never_take_the_same_rows(db: Database) -> None:
    event_ids = _fill(db, 30)
    with db.transaction() as first:
        held = ledger.take_outbox(first, 20)
        assert [row[1] for row in held] == event_ids[:20]
        with db.transaction() as second:
            rest = ledger.take_outbox(second, 20)
            assert [row[1] for row in rest] == event_ids[20:]
            second.rollback()  # the second relay's publish failed
        first.rollback()  # and so did the first one's
    with db.transaction() as conn:
        again = ledger.take_outbox(conn, 100)
    assert [row[1] for row in again] == event_ids
