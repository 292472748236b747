"""Publisher confirms against the real RabbitMQ: what `publish_batch` promises the relay.

`publish_batch` returns only once the broker confirmed every message of the batch, and
raises for a nack, an unroutable message, a timeout or a lost channel or connection;
the relay then rolls its transaction back and the outbox rows stay. Each test has its
own database (fixture `db`) and its own exchange and queue names, removed afterwards;
the one that closes a connection closes only its own, found by its connection_name.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from worker.adapters.postgres import ledger
from worker.adapters.postgres.pool import Database
from worker.adapters.rabbitmq import COMPLETED, BusConnection, Publisher, Topology, delete_topology
from worker.domain.errors import BusUnavailable
from worker.services.ports import OutMessage
from worker.services.relay import relay_once

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def topology() -> Iterator[Topology]:
    topo = Topology.for_exchange(_name("test-confirms"))
    with BusConnection(AMQP_URL, connection_name=_name("test-confirms-setup")) as bus:
        bus.declare_bus(topo)
    yield topo
    delete_topology(AMQP_URL, topo)


@pytest.fixture
def bus() -> Iterator[BusConnection]:
    with BusConnection(AMQP_URL, connection_name=_name("test-confirms-publisher")) as connection:
        yield connection


@pytest.fixture
def observer(topology: Topology) -> Iterator[str]:
    """A durable queue bound to `refund.completed` on the test's exchange."""
    queue = f"{topology.exchange}.observer"
    with BusConnection(AMQP_URL, connection_name=_name("test-confirms-observer")) as bus:
        channel = bus.channel()
        channel.queue_declare(queue, durable=True)
        channel.queue_bind(queue, topology.exchange, routing_key=COMPLETED)
    yield queue
    with BusConnection(AMQP_URL, connection_name=_name("test-confirms-cleanup")) as bus:
        bus.channel().queue_delete(queue)


def _received(queue: str) -> list[str]:
    """The message_ids in `queue`, in order, taking them."""
    ids = []
    with BusConnection(AMQP_URL, connection_name=_name("test-confirms-reader")) as bus:
        channel = bus.channel()
        while True:
            method, properties, _body = channel.basic_get(queue, auto_ack=True)
            if method is None:
                return ids
            ids.append(str(properties.message_id))


def _messages(count: int, prefix: str = "m") -> list[OutMessage]:
    return [OutMessage(COMPLETED, b'{"n": %d}' % n, f"{prefix}-{n:05d}") for n in range(count)]


def _fill(db: Database, count: int) -> list[str]:
    events = [
        (f"ev-{n:05d}", ledger.COMPLETED_ROUTING_KEY, json.dumps({"refund_id": f"r-{n}"}))
        for n in range(count)
    ]
    with db.transaction() as conn:
        ledger.insert_outbox(conn, events)
    return [e[0] for e in events]


def _outbox_ids(db: Database) -> list[str]:
    with db.transaction() as conn:
        rows = conn.execute("SELECT event_id FROM outbox ORDER BY id").fetchall()
    return [str(r[0]) for r in rows]


def test_confirmed_batches_are_delivered_once_each_in_order(
    topology: Topology, bus: BusConnection, observer: str
) -> None:
    publisher = Publisher(bus, topology)
    sent = []
    for batch in range(3):  # one channel: the delivery tags go on across batches
        messages = _messages(1500, prefix=f"b{batch}")
        publisher.publish_batch(messages)
        sent += [m.message_id for m in messages]
    # Returned only once confirmed: every message is in the queue already.
    assert bus.message_count(observer) == 4500
    assert _received(observer) == sent


def test_one_unroutable_message_makes_the_batch_raise_and_the_channel_stays_usable(
    topology: Topology, bus: BusConnection, observer: str
) -> None:
    publisher = Publisher(bus, topology)
    messages = _messages(200)
    messages.insert(137, OutMessage("refund.nowhere", b"{}", "lost-1"))  # no binding for it
    with pytest.raises(BusUnavailable, match=r"1 of 201 messages were unroutable.*refund\.nowhere"):
        publisher.publish_batch(messages)
    publisher.publish_batch(_messages(3, prefix="after"))
    received = _received(observer)
    assert received[:200] == [m.message_id for m in messages if m.message_id != "lost-1"]
    assert received[200:] == ["after-00000", "after-00001", "after-00002"]


def test_a_nack_makes_the_batch_raise(topology: Topology, bus: BusConnection) -> None:
    # A queue that refuses publishes beyond five messages: the broker nacks the rest.
    queue = f"{topology.exchange}.full"
    channel = bus.channel()
    channel.queue_declare(
        queue, durable=True, arguments={"x-max-length": 5, "x-overflow": "reject-publish"}
    )
    channel.queue_bind(queue, topology.exchange, routing_key=COMPLETED)
    try:
        publisher = Publisher(bus, topology)
        with pytest.raises(BusUnavailable, match=r"refused \(basic\.nack\) 15 of 20 messages"):
            publisher.publish_batch(_messages(20))
        assert bus.message_count(queue) == 5
    finally:
        bus.channel().queue_delete(queue)


def test_no_confirm_within_the_timeout_raises_and_the_next_batch_uses_a_new_channel(
    topology: Topology, bus: BusConnection, observer: str
) -> None:
    publisher = Publisher(bus, topology, confirm_timeout=1e-9)
    with pytest.raises(BusUnavailable, match="did not confirm within"):
        publisher.publish_batch(_messages(50, prefix="slow"))
    publisher.confirm_timeout = 30.0
    publisher.publish_batch(_messages(5, prefix="next"))
    assert _received(observer)[-5:] == [f"next-{n:05d}" for n in range(5)]


def _close_connection_named(name: str) -> None:
    """Close, through rabbitmqctl, the one connection whose connection_name is `name`."""
    listing = subprocess.run(
        ["rabbitmqctl", "list_connections", "-q", "--no-table-headers", "pid", "client_properties"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    pids = [line.split("\t", 1)[0] for line in listing.splitlines() if f'"{name}"' in line]
    assert len(pids) == 1, f"expected one connection named {name}, found {len(pids)}"
    subprocess.run(
        ["rabbitmqctl", "close_connection", pids[0], "closed by test_relay_confirms"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )


class _Interrupted(Publisher):
    """Runs `interrupt` once, after a batch is queued and before its confirms are awaited."""

    def __init__(self, bus: BusConnection, topology: Topology, interrupt: Any) -> None:
        super().__init__(bus, topology)
        self.interrupt = interrupt

    def _await_confirms(self, what: str) -> None:
        interrupt, self.interrupt = self.interrupt, None
        if interrupt is not None:
            interrupt()
        super()._await_confirms(what)


def test_a_connection_closed_by_the_broker_mid_batch_leaves_the_rows_in_the_outbox(
    db: Database, topology: Topology, bus: BusConnection, observer: str
) -> None:
    event_ids = _fill(db, 500)
    publisher = _Interrupted(bus, topology, lambda: _close_connection_named(bus.connection_name))
    with pytest.raises(BusUnavailable, match="CONNECTION_FORCED"):
        relay_once(db, publisher, limit=1000)
    assert _outbox_ids(db) == event_ids  # rolled back: every row is still there

    assert relay_once(db, publisher, limit=1000) == 500  # a new connection and channel
    assert _outbox_ids(db) == []
    received = _received(observer)
    assert set(received) == set(event_ids)  # at least once, by the same event_ids
    assert received[-500:] == event_ids


def test_the_exchange_deleted_mid_batch_leaves_the_rows_in_the_outbox(
    db: Database, topology: Topology, bus: BusConnection
) -> None:
    event_ids = _fill(db, 300)

    def delete_exchange() -> None:
        with BusConnection(AMQP_URL, connection_name=_name("test-confirms-admin")) as admin:
            admin.channel().exchange_delete(topology.exchange)

    publisher = _Interrupted(bus, topology, delete_exchange)
    with pytest.raises(BusUnavailable, match="404"):
        relay_once(db, publisher, limit=1000)
    assert _outbox_ids(db) == event_ids
