"""The intake dead-letter queue: looking at it without consuming, and moving it back.

`peek_dead_letters` takes up to `limit` messages with `basic.get` and manual acks,
then closes its channel without acking: the broker puts every one of them back, in
order (marked redelivered; a quorum queue also counts the return in `x-delivery-count`,
and the dead-letter queue has no delivery limit, so nothing is lost by looking).

`move_dead_letters` republishes each taken message (as `rewrite` makes it) durably, in
batches, and acks a batch in the dead-letter queue only once the broker committed its
republication: a crash duplicates at worst (intake is idempotent), never loses.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from worker.adapters.rabbitmq.connection import BusConnection, bus_errors, default_connection_name
from worker.adapters.rabbitmq.publisher import Publisher
from worker.adapters.rabbitmq.topology import Topology
from worker.adapters.rabbitmq.wire import delivery_from
from worker.services.ports import Delivery, OutMessage

MOVE_BATCH = 500


@dataclass(frozen=True, slots=True)
class DeadLetterPeek:
    """How many messages wait in the dead-letter queue, and the first `limit` of them."""

    total: int
    sample: tuple[Delivery, ...]


def _close(channel: Any) -> None:
    if channel.is_open:
        with suppress(Exception):
            channel.close()


def peek_dead_letters(amqp_url: str, topology: Topology, limit: int) -> DeadLetterPeek:
    """The first `limit` dead letters, left in the queue (see the module docstring)."""
    with BusConnection(amqp_url, connection_name=default_connection_name("console")) as bus:
        total = bus.message_count(topology.dead_letter_queue)
        channel = bus.channel()
        taken: list[Delivery] = []
        try:
            with bus_errors(f"peeking at {topology.dead_letter_queue!r}"):
                while len(taken) < limit:
                    method, properties, body = channel.basic_get(
                        topology.dead_letter_queue, auto_ack=False
                    )
                    if method is None:
                        break
                    taken.append(delivery_from(method, properties, body))
        finally:
            _close(channel)  # unacked: every message goes back to the queue
    return DeadLetterPeek(total, tuple(taken))


def move_dead_letters(
    amqp_url: str,
    topology: Topology,
    limit: int,
    rewrite: Callable[[Delivery], OutMessage],
    *,
    role: str = "replay",
) -> int:
    """Republish up to `limit` dead letters as `rewrite` makes them; how many moved."""
    with BusConnection(amqp_url, connection_name=default_connection_name(role)) as bus:
        publisher = Publisher(bus, topology)
        channel = bus.channel()
        moved = 0
        try:
            while moved < limit:
                batch: list[OutMessage] = []
                last_tag: int | None = None
                with bus_errors(f"reading {topology.dead_letter_queue!r}"):
                    while len(batch) < min(MOVE_BATCH, limit - moved):
                        method, properties, body = channel.basic_get(
                            topology.dead_letter_queue, auto_ack=False
                        )
                        if method is None:
                            break
                        delivery = delivery_from(method, properties, body)
                        last_tag = delivery.delivery_tag
                        batch.append(rewrite(delivery))
                if not batch:
                    break
                publisher.publish_batch(batch)  # committed by the broker before the ack
                with bus_errors(f"acking {len(batch)} replayed dead letters"):
                    channel.basic_ack(last_tag, multiple=True)
                moved += len(batch)
        finally:
            _close(channel)
    return moved
