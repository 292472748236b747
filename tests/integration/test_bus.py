"""The RabbitMQ adapter against the real broker at 127.0.0.1:5672.

Every test works under its own random exchange name (`test-bus-<hex>`), so its
queues and exchanges are its own, and deletes them afterwards. The one test that
breaks a connection closes only the connection it created, found by its
connection_name.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import pika
import pytest

from worker.adapters.rabbitmq import (
    COMPLETED,
    HEADER_DEAD_LETTERED_AT,
    HEADER_DETAIL,
    HEADER_ORIGINAL_ROUTING_KEY,
    HEADER_REASON,
    REQUESTED,
    BusConnection,
    Publisher,
    QueueType,
    Topology,
    bus_ping,
    delete_topology,
    drain,
    run_consumer,
)
from worker.domain.errors import BusUnavailable, ConfigError, DatabaseUnavailable
from worker.services.ports import DeadLetter, Delivery, OutMessage

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def topology() -> Iterator[Topology]:
    topo = Topology.for_exchange(_name("test-bus"))
    yield topo
    for consumer in _running:  # a failed test must not leave a consumer running
        consumer.stop.set()
        consumer.thread.join(10)
    _running.clear()
    delete_topology(AMQP_URL, topo)


def _declare(topology: Topology, queue_type: QueueType = "quorum", limit: int = 5) -> None:
    with BusConnection(AMQP_URL, connection_name=_name("test-bus-setup")) as bus:
        bus.declare_intake(topology, queue_type=queue_type, delivery_limit=limit)


def _publish(topology: Topology, bodies: Sequence[bytes], **headers: object) -> list[str]:
    ids = [str(uuid.uuid4()) for _ in bodies]
    messages = [
        OutMessage(routing_key=REQUESTED, body=body, message_id=mid, headers=headers)
        for body, mid in zip(bodies, ids, strict=True)
    ]
    with BusConnection(AMQP_URL, connection_name=_name("test-bus-publisher")) as bus:
        Publisher(bus, topology).publish_batch(messages)
    return ids


def _count(queue: str) -> int:
    with BusConnection(AMQP_URL, connection_name=_name("test-bus-count")) as bus:
        return bus.message_count(queue)


_running: list[Consumer] = []


def _wait_until(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    """Poll `predicate`; fail at once if a consumer thread of this test died."""
    deadline = time.monotonic() + timeout
    while not predicate():
        for consumer in _running:
            assert consumer.error is None, f"run_consumer raised {consumer.error!r}"
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


class Recorder:
    """A handler that stores deliveries (thread-safe) and dead-letters non-JSON bodies."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.batches: list[list[Delivery]] = []

    def __call__(self, deliveries: Sequence[Delivery]) -> Sequence[DeadLetter]:
        dead = []
        for delivery in deliveries:
            try:
                json.loads(delivery.body)
            except ValueError as exc:
                dead.append(DeadLetter(delivery, "invalid_json", f"not JSON: {exc}"))
        with self.lock:
            self.batches.append(list(deliveries))
        return dead

    @property
    def deliveries(self) -> list[Delivery]:
        with self.lock:
            return [d for batch in self.batches for d in batch]

    def ids(self) -> set[str | None]:
        return {d.message_id for d in self.deliveries}


class Consumer:
    """run_consumer on a thread, under a unique connection name."""

    def __init__(
        self, topology: Topology, handler: Callable[..., Sequence[DeadLetter]], **options: Any
    ) -> None:
        self.stop = threading.Event()
        self.connection_name = _name("test-bus-consumer")
        self.error: BaseException | None = None
        self.thread = threading.Thread(
            target=self._run, args=(topology, handler, options), daemon=True
        )
        self.thread.start()
        _running.append(self)

    def _run(
        self,
        topology: Topology,
        handler: Callable[..., Sequence[DeadLetter]],
        options: dict[str, Any],
    ) -> None:
        try:
            run_consumer(
                AMQP_URL,
                topology,
                handler,
                stop=self.stop,
                connection_name=self.connection_name,
                **options,
            )
        except BaseException as exc:
            self.error = exc

    def finish(self, timeout: float = 10.0) -> float:
        """Set stop, wait for the loop to return; the seconds it took."""
        started = time.monotonic()
        self.stop.set()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "run_consumer did not return after stop"
        assert self.error is None, f"run_consumer raised {self.error!r}"
        return time.monotonic() - started


def _json_bodies(n: int) -> list[bytes]:
    return [json.dumps({"n": i}).encode() for i in range(n)]


@pytest.mark.parametrize("queue_type", ["quorum", "classic"])
def test_micro_batches_are_bounded_and_everything_is_acked(
    topology: Topology, queue_type: QueueType
) -> None:
    _declare(topology, queue_type)
    ids = _publish(topology, _json_bodies(1000))
    recorder = Recorder()
    consumer = Consumer(
        topology, recorder, prefetch=200, max_batch=100, max_wait=0.05, queue_type=queue_type
    )
    _wait_until(lambda: len(recorder.deliveries) >= 1000)
    consumer.finish()

    sizes = [len(batch) for batch in recorder.batches]
    assert max(sizes) == 100  # full batches when messages are waiting, never more
    assert len(sizes) >= 10
    assert recorder.ids() == set(ids)
    assert len(recorder.deliveries) == 1000  # no redelivery: every batch was acked
    assert _count(topology.intake_queue) == 0
    assert _count(topology.dead_letter_queue) == 0


def test_max_wait_closes_a_partial_batch(topology: Topology) -> None:
    _declare(topology)
    recorder = Recorder()
    consumer = Consumer(topology, recorder, prefetch=500, max_batch=500, max_wait=0.05)
    _wait_until(lambda: _consumers(topology.intake_queue) == 1)
    _publish(topology, _json_bodies(3))
    started = time.monotonic()
    _wait_until(lambda: len(recorder.deliveries) == 3, timeout=5)
    assert time.monotonic() - started < 2.0
    consumer.finish()
    assert _count(topology.intake_queue) == 0


def _consumers(queue: str) -> int:
    with BusConnection(AMQP_URL, connection_name=_name("test-bus-count")) as bus:
        channel = bus.channel()
        return int(channel.queue_declare(queue, passive=True).method.consumer_count)


def test_dead_letters_land_in_the_dlq_unchanged_with_reason_headers(topology: Topology) -> None:
    _declare(topology)
    bodies = [b'{"ok": 1}', b"not json \xff", b'{"ok": 2}', b"{broken"]
    ids = [str(uuid.uuid4()) for _ in bodies]
    with BusConnection(AMQP_URL, connection_name=_name("test-bus-publisher")) as bus:
        channel = bus.channel()
        channel.confirm_delivery()
        for body, mid in zip(bodies, ids, strict=True):
            channel.basic_publish(
                topology.exchange,
                REQUESTED,
                body,
                pika.BasicProperties(
                    delivery_mode=2,
                    message_id=mid,
                    content_type="application/json",
                    correlation_id="corr-" + mid,
                    app_id="order-system",
                    headers={"x-tenant": "t1", "attempt": 7},
                ),
                mandatory=True,
            )
    recorder = Recorder()
    consumer = Consumer(topology, recorder)
    _wait_until(lambda: len(recorder.deliveries) == 4)
    consumer.finish()

    assert _count(topology.intake_queue) == 0
    dead = {d.message_id: d for d in drain(AMQP_URL, topology.dead_letter_queue, expect=2)}
    assert set(dead) == {ids[1], ids[3]}
    for index in (1, 3):
        letter = dead[ids[index]]
        assert letter.body == bodies[index]
        assert letter.content_type == "application/json"
        assert letter.properties["correlation_id"] == "corr-" + ids[index]
        assert letter.properties["app_id"] == "order-system"
        assert letter.headers["x-tenant"] == "t1"
        assert letter.headers["attempt"] == 7
        assert letter.headers[HEADER_REASON] == "invalid_json"
        assert str(letter.headers[HEADER_DETAIL]).startswith("not JSON: ")
        assert letter.headers[HEADER_ORIGINAL_ROUTING_KEY] == REQUESTED
        stamped = datetime.fromisoformat(str(letter.headers[HEADER_DEAD_LETTERED_AT]))
        assert abs(time.time() - stamped.timestamp()) < 60
    assert _count(topology.dead_letter_queue) == 0


class FailingFirst(Recorder):
    """Raises DatabaseUnavailable on its first `failures` calls, then records."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures
        self.calls = 0

    def __call__(self, deliveries: Sequence[Delivery]) -> Sequence[DeadLetter]:
        self.calls += 1
        if self.calls <= self.failures:
            raise DatabaseUnavailable("database is down")
        return super().__call__(deliveries)


def test_transient_failure_nacks_and_the_batch_is_redelivered(topology: Topology) -> None:
    _declare(topology)
    ids = _publish(topology, _json_bodies(50))
    handler = FailingFirst(failures=3)
    consumer = Consumer(topology, handler, transient_hold=0.0, max_backoff=0.2)
    _wait_until(lambda: handler.ids() == set(ids))
    consumer.finish()

    assert handler.calls > 3
    redelivered = [d for d in handler.deliveries if d.redelivered]
    assert redelivered, "the failed batch should have come back from the broker"
    assert all(int(d.headers["x-delivery-count"]) >= 1 for d in redelivered)  # type: ignore[call-overload]
    assert _count(topology.intake_queue) == 0
    assert _count(topology.dead_letter_queue) == 0


def test_transient_failure_is_held_without_spending_the_delivery_limit(
    topology: Topology,
) -> None:
    _declare(topology, limit=1)
    ids = _publish(topology, _json_bodies(20))
    handler = FailingFirst(failures=4)  # more failures than the delivery limit allows
    consumer = Consumer(topology, handler, transient_hold=30.0, max_backoff=0.1, delivery_limit=1)
    _wait_until(lambda: handler.ids() == set(ids))
    consumer.finish()

    assert handler.calls >= 5
    assert not any(d.redelivered for d in handler.deliveries)
    assert all(d.headers.get("x-delivery-count", 0) == 0 for d in handler.deliveries)
    assert _count(topology.intake_queue) == 0
    assert _count(topology.dead_letter_queue) == 0


def test_unexpected_handler_error_dead_letters_only_the_poison_message(
    topology: Topology,
) -> None:
    _declare(topology)
    bodies = _json_bodies(20)
    bodies[7] = b'{"boom": true}'
    ids = _publish(topology, bodies)
    recorder = Recorder()

    def handler(deliveries: Sequence[Delivery]) -> Sequence[DeadLetter]:
        if any(d.body == b'{"boom": true}' for d in deliveries):
            raise KeyError("refund_id")
        return recorder(deliveries)

    consumer = Consumer(topology, handler)
    _wait_until(lambda: len(recorder.ids()) == 19)
    _wait_until(lambda: _count(topology.dead_letter_queue) == 1)
    consumer.finish()

    assert recorder.ids() == set(ids) - {ids[7]}
    [letter] = drain(AMQP_URL, topology.dead_letter_queue, expect=1)
    assert letter.message_id == ids[7]
    assert letter.body == b'{"boom": true}'
    assert letter.headers[HEADER_REASON] == "handler_error"
    assert letter.headers[HEADER_DETAIL] == "KeyError: 'refund_id'"
    assert _count(topology.intake_queue) == 0


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
        ["rabbitmqctl", "close_connection", pids[0], "closed by test_bus"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )


def test_a_forcibly_closed_connection_is_survived_with_nothing_lost(topology: Topology) -> None:
    _declare(topology)
    ids = _publish(topology, _json_bodies(600))
    recorder = Recorder()
    killed = threading.Event()
    calls = 0

    def handler(deliveries: Sequence[Delivery]) -> Sequence[DeadLetter]:
        nonlocal calls
        calls += 1
        dead = recorder(deliveries)  # "committed" before the connection goes
        if calls == 3:
            killed.wait(30)  # the ack of this batch will fail: it must come back
        return dead

    consumer = Consumer(topology, handler, prefetch=100, max_batch=50, max_backoff=0.5)
    _wait_until(lambda: calls >= 3)
    _close_connection_named(consumer.connection_name)
    killed.set()
    _wait_until(lambda: recorder.ids() == set(ids), timeout=30)
    consumer.finish()

    assert any(d.redelivered for d in recorder.deliveries)
    assert len(recorder.deliveries) > 600  # the unacked batch was handled twice
    assert _count(topology.intake_queue) == 0
    assert _count(topology.dead_letter_queue) == 0


def test_stop_ends_an_idle_loop_promptly(topology: Topology) -> None:
    _declare(topology)
    consumer = Consumer(topology, Recorder())
    _wait_until(lambda: _consumers(topology.intake_queue) == 1)
    assert consumer.finish() < 1.5
    assert _consumers(topology.intake_queue) == 0


def test_stop_ends_the_loop_promptly_while_the_broker_is_unreachable(
    topology: Topology,
) -> None:
    stop = threading.Event()
    errors: list[BaseException] = []

    def consume() -> None:
        try:
            run_consumer(_unused_url(), topology, Recorder(), stop=stop, max_backoff=0.5)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    time.sleep(1.0)  # a few failed attempts and backoffs
    assert thread.is_alive(), f"run_consumer gave up: {errors}"
    stop.set()
    thread.join(1.5)
    assert not thread.is_alive()
    assert errors == []


def test_consumer_recovers_when_the_broker_cancels_it(topology: Topology) -> None:
    """Deleting the intake queue cancels the consumer; it redeclares and goes on."""
    _declare(topology)
    recorder = Recorder()
    consumer = Consumer(topology, recorder, max_backoff=0.5)
    _wait_until(lambda: _consumers(topology.intake_queue) == 1)
    with BusConnection(AMQP_URL, connection_name=_name("test-bus-admin")) as bus:
        bus.channel().queue_delete(topology.intake_queue)
    _wait_until(lambda: _queue_exists(topology.intake_queue), timeout=10)
    _wait_until(lambda: _consumers(topology.intake_queue) == 1, timeout=10)
    ids = _publish(topology, _json_bodies(5))
    _wait_until(lambda: recorder.ids() == set(ids), timeout=10)
    consumer.finish()


def _queue_exists(queue: str) -> bool:
    try:
        _count(queue)
    except BusUnavailable:
        return False
    return True


def _unused_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    return f"amqp://guest:guest@127.0.0.1:{free_port}/%2F"


def test_stop_settles_what_is_in_hand(topology: Topology) -> None:
    _declare(topology)
    ids = _publish(topology, _json_bodies(300))
    recorder = Recorder()

    def slow(deliveries: Sequence[Delivery]) -> Sequence[DeadLetter]:
        time.sleep(0.05)
        return recorder(deliveries)

    consumer = Consumer(topology, slow, prefetch=100, max_batch=20)
    _wait_until(lambda: len(recorder.deliveries) >= 20)
    assert consumer.finish() < 3.0
    handled = recorder.ids()
    assert handled and handled < set(ids)
    # Everything handled was acked; everything else is back in the queue, none lost.
    remaining = drain(AMQP_URL, topology.intake_queue, expect=300 - len(handled))
    assert {d.message_id for d in remaining} == set(ids) - handled


def test_publish_batch_of_10k_arrives_complete(topology: Topology) -> None:
    _declare(topology)
    messages = [
        OutMessage(routing_key=REQUESTED, body=b'{"n": %d}' % i, message_id=f"m-{i}")
        for i in range(10_000)
    ]
    with BusConnection(AMQP_URL, connection_name=_name("test-bus-publisher")) as bus:
        publisher = Publisher(bus, topology)
        publisher.publish_batch(messages)  # its speed: bench/micro_publish.py
    assert _count(topology.intake_queue) == 10_000

    received = drain(AMQP_URL, topology.intake_queue, expect=10_000)
    assert len(received) == 10_000
    assert {d.message_id for d in received} == {m.message_id for m in messages}
    assert {d.content_type for d in received} == {"application/json"}
    assert received[42].body == b'{"n": %d}' % int(str(received[42].message_id)[2:])


def test_unroutable_messages_make_publish_batch_fail(topology: Topology) -> None:
    with BusConnection(AMQP_URL, connection_name=_name("test-bus-publisher")) as bus:
        bus.declare_bus(topology)  # no queue is bound for refund.completed
        publisher = Publisher(bus, topology)
        with pytest.raises(BusUnavailable, match="1 of 1 messages were unroutable"):
            publisher.publish_batch([OutMessage(COMPLETED, b"{}", "m-1")])
        # The publisher is still usable afterwards.
        with pytest.raises(BusUnavailable, match="unroutable"):
            publisher.publish_batch([OutMessage(COMPLETED, b"{}", "m-2")])


def test_publishing_to_a_missing_exchange_is_bus_unavailable(topology: Topology) -> None:
    _declare(topology)
    with BusConnection(AMQP_URL, connection_name=_name("test-bus-publisher")) as bus:
        publisher = Publisher(bus, topology)
        with pytest.raises(BusUnavailable, match="404"):
            publisher.publish_batch([OutMessage("x", b"{}", "m-1", exchange=_name("missing"))])
        publisher.publish_batch([OutMessage(REQUESTED, b"{}", "m-2")])  # channel reopened
    assert _count(topology.intake_queue) == 1


def test_redeclaring_with_other_arguments_is_a_config_error(topology: Topology) -> None:
    _declare(topology, "quorum", limit=5)
    with ThreadPoolExecutor(4) as pool:  # replicas starting together: all succeed
        list(pool.map(lambda _: _declare(topology, "quorum", limit=5), range(4)))

    with pytest.raises(ConfigError) as limit_error:
        _declare(topology, "quorum", limit=3)
    assert topology.intake_queue in str(limit_error.value)
    assert "x-delivery-limit" in str(limit_error.value)

    with pytest.raises(ConfigError) as type_error:
        _declare(topology, "classic")
    assert "x-queue-type" in str(type_error.value)


def test_broker_dead_letters_a_crash_looping_message_after_the_delivery_limit(
    topology: Topology,
) -> None:
    """The quorum queue's own safety net: with limit 1 the third return goes to the DLQ."""
    _declare(topology, limit=1)
    [mid] = _publish(topology, [b'{"crash": true}'])
    with BusConnection(AMQP_URL, connection_name=_name("test-bus-looper")) as bus:
        for expected_count in (0, 1):
            channel = bus.channel()
            _wait_until(lambda: _count(topology.intake_queue) == 1, timeout=5)
            _method, properties, _body = channel.basic_get(topology.intake_queue)
            assert properties.headers["x-delivery-count"] == expected_count
            channel.close()  # a crash: the delivery returns unacked and is counted
    _wait_until(lambda: _count(topology.dead_letter_queue) == 1, timeout=10)
    [letter] = drain(AMQP_URL, topology.dead_letter_queue, expect=1)
    assert letter.message_id == mid
    assert letter.headers["x-first-death-reason"] == "delivery_limit"
    assert HEADER_REASON not in letter.headers


def test_bus_ping(topology: Topology) -> None:
    bus_ping(AMQP_URL)
    with pytest.raises(BusUnavailable):
        bus_ping(AMQP_URL, exchange=topology.exchange)  # not declared yet
    _declare(topology)
    bus_ping(AMQP_URL, exchange=topology.exchange)

    with pytest.raises(BusUnavailable):
        bus_ping(_unused_url(), timeout=2)
