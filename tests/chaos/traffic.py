"""The order system's side of a chaos run: publish the load, consume refund.completed.

Both survive broker outages: they reconnect with backoff and carry on. The
publisher re-sends a whole chunk whose transaction may not have committed (the
worker must treat the repeats as duplicates); the collector acks after it has
recorded an event and tells the broker's redeliveries to *it* (after a lost
connection) apart from the worker's own re-publishes, so only the latter are
counted as redelivered events.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pika
import structlog

from tests.chaos.load import Message
from worker.adapters.rabbitmq import BusConnection, Publisher, Topology, delivery_from
from worker.domain.errors import BusUnavailable
from worker.services.ports import Delivery, OutMessage

log = structlog.get_logger("chaos.traffic")


@dataclass
class Received:
    """Every refund.completed event seen, by refund_id, in arrival order."""

    events: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    observer_redeliveries: int = 0
    unparseable: int = 0
    last_at: float = 0.0

    @property
    def total(self) -> int:
        return sum(len(v) for v in self.events.values())


class EventCollector(threading.Thread):
    """Consume the observer queue (bound to refund.completed) until stopped."""

    def __init__(self, amqp_url: str, queue: str) -> None:
        super().__init__(name="chaos-collector", daemon=True)
        self.amqp_url = amqp_url
        self.queue = queue
        self.received = Received()
        self._seen_bodies: set[bytes] = set()
        self._lock = threading.Lock()
        self._halt = threading.Event()
        self.reconnects = 0

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=10)

    def snapshot(self) -> tuple[set[str], int]:
        with self._lock:
            return set(self.received.events), self.received.total

    def events(self) -> tuple[dict[str, list[dict[str, Any]]], int]:
        """A copy of the events seen so far, and how many of the broker's redeliveries to
        this consumer were left out."""
        with self._lock:
            copy = {k: list(v) for k, v in self.received.events.items()}
            return copy, self.received.observer_redeliveries

    def quiet_for(self) -> float:
        with self._lock:
            last = self.received.last_at
        return time.monotonic() - last if last else float("inf")

    def run(self) -> None:
        while not self._halt.is_set():
            bus = BusConnection(self.amqp_url, connection_name="chaos.collector")
            try:
                channel = bus.channel()
                channel.basic_qos(prefetch_count=500)
                channel.basic_consume(self.queue, self._on_message, auto_ack=False)
                while not self._halt.is_set():
                    bus.process_events(0.2)
            except (BusUnavailable, pika.exceptions.AMQPError, OSError):
                self.reconnects += 1
                self._halt.wait(0.5)
            finally:
                bus.close()

    def _on_message(self, channel: Any, method: Any, _props: Any, body: bytes) -> None:
        with self._lock:
            received = self.received
            if method.redelivered and body in self._seen_bodies:
                received.observer_redeliveries += 1
            else:
                try:
                    event = json.loads(body)
                    received.events[str(event["refund_id"])].append(event)
                    self._seen_bodies.add(body)
                except (ValueError, KeyError, TypeError):
                    received.unparseable += 1
            received.last_at = time.monotonic()
        channel.basic_ack(method.delivery_tag)


class LoadPublisher(threading.Thread):
    """Publish messages in chunks spread over `seconds`, retrying a chunk until it commits."""

    def __init__(
        self,
        amqp_url: str,
        topology: Topology,
        messages: Sequence[Message],
        *,
        seconds: float,
        chunk: int = 250,
        on_progress: Callable[[int], None] | None = None,
    ) -> None:
        super().__init__(name="chaos-publisher", daemon=True)
        self.amqp_url = amqp_url
        self.topology = topology
        self.messages = list(messages)
        self.seconds = seconds
        self.chunk = chunk
        self.on_progress = on_progress
        self.attempts: Counter[str] = Counter()  # message_id -> times handed to the broker
        self.retries = 0
        self.error: BaseException | None = None
        self.finished_at: float | None = None

    def run(self) -> None:
        try:
            self._publish_all()
        except BaseException as exc:  # reported by the runner
            self.error = exc
        self.finished_at = time.monotonic()

    def _publish_all(self) -> None:
        chunks = [
            self.messages[i : i + self.chunk] for i in range(0, len(self.messages), self.chunk)
        ]
        started = time.monotonic()
        bus = BusConnection(self.amqp_url, connection_name="chaos.publisher")
        publisher = Publisher(bus, self.topology)
        sent = 0
        try:
            for n, part in enumerate(chunks):
                due = started + self.seconds * n / max(len(chunks), 1)
                if (pause := due - time.monotonic()) > 0:
                    time.sleep(pause)
                outgoing = [OutMessage(Topology.REQUESTED, m.body, m.message_id) for m in part]
                give_up = time.monotonic() + 180
                while True:
                    for m in part:
                        self.attempts[m.message_id] += 1
                    try:
                        publisher.publish_batch(outgoing)
                        break
                    except BusUnavailable as exc:
                        self.retries += 1
                        bus.close()
                        if time.monotonic() > give_up:
                            raise RuntimeError(f"publishing failed for 180 s: {exc}") from exc
                        time.sleep(0.5)
                sent += len(part)
                if self.on_progress is not None:
                    self.on_progress(sent)
        finally:
            bus.close()


def drain_queue(amqp_url: str, queue: str) -> list[Delivery]:
    """Take (and ack) every message in `queue`."""
    taken: list[Delivery] = []
    with BusConnection(amqp_url, connection_name="chaos.drain") as bus:
        channel = bus.channel()
        while True:
            method, props, body = channel.basic_get(queue, auto_ack=True)
            if method is None:
                return taken
            taken.append(delivery_from(method, props, body))
