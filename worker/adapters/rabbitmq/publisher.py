"""Publishing to the bus durably, in batches: one AMQP transaction per batch.

`publish_batch` uses one AMQP transaction per batch (`tx.select` once per channel,
publish everything, `tx.commit`). RabbitMQ answers `commit-ok` only after every
message is routed and, for durable queues, written; unroutable messages come back as
`basic.return` before the `commit-ok`, and make the call fail. This avoids pika's
blocking publisher confirms, which wait for the broker once per message (about
1k msg/s). Dead letters go out the same way, to the dead-letter exchange.

The frames of a batch are queued on pika's underlying channel and written together
by the commit, rather than one socket write per message through
`BlockingChannel.basic_publish`; `bench/micro_publish.py` measures the difference.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import suppress
from datetime import UTC, datetime
from typing import Any

from worker.adapters.rabbitmq.connection import BusConnection, bus_errors
from worker.adapters.rabbitmq.topology import Topology
from worker.adapters.rabbitmq.wire import Outgoing, dead_letter_outgoing, outgoing_for
from worker.domain.errors import BusUnavailable
from worker.services.ports import DeadLetter, OutMessage


class Publisher:
    """Publishes batches durably on its own transactional channel of a BusConnection."""

    def __init__(self, connection: BusConnection, topology: Topology) -> None:
        self._bus = connection
        self.topology = topology
        self._channel: Any = None
        self._generation = -1
        self._returned: list[Any] = []

    def _tx_channel(self) -> Any:
        if (
            self._channel is not None
            and self._channel.is_open
            and self._generation == self._bus.generation
        ):
            return self._channel
        channel = self._bus.channel()
        with bus_errors("opening a publishing transaction"):
            channel.add_on_return_callback(self._on_return)
            channel.tx_select()
        self._channel, self._generation = channel, self._bus.generation
        return channel

    def _on_return(self, _channel: Any, method: Any, _properties: Any, _body: bytes) -> None:
        self._returned.append(method)

    def publish_batch(self, messages: Sequence[OutMessage]) -> None:
        """Publish every message in one transaction; return once the broker holds all.

        Raises `BusUnavailable` if the bus fails or any message is unroutable; the
        caller then treats the whole batch as not published (some may have been, so
        consumers deduplicate by message_id).
        """
        self._publish([outgoing_for(m, self.topology.exchange) for m in messages])

    def _publish(self, items: Sequence[Outgoing]) -> None:
        if not items:
            return
        channel = self._tx_channel()
        self._returned = []
        try:
            with bus_errors(f"publishing {len(items)} messages"):
                # Queue every frame on the underlying channel and let the commit write them
                # together: outside confirm mode, BlockingChannel.basic_publish is exactly
                # that plus one socket write per message (most of a relay's CPU).
                publish = getattr(channel, "_impl", channel).basic_publish
                for item in items:
                    publish(
                        item.exchange,
                        item.routing_key,
                        item.body,
                        item.properties,
                        mandatory=True,
                    )
                channel.tx_commit()
                # basic.return frames arrive before commit-ok; this dispatches them.
                self._bus.pika_connection.process_data_events(time_limit=0)
        except BusUnavailable:
            self._discard_channel()
            raise
        if self._returned:
            first = self._returned[0]
            count = len(self._returned)
            self._returned = []
            raise BusUnavailable(
                f"{count} of {len(items)} messages were unroutable (first: exchange "
                f"{first.exchange!r}, routing key {first.routing_key!r}: {first.reply_text})"
            )

    def _discard_channel(self) -> None:
        channel, self._channel = self._channel, None
        if channel is not None and channel.is_open:
            with suppress(Exception):
                channel.close()

    def dead_letter(self, dead_letters: Sequence[DeadLetter]) -> None:
        """Same as the module function `dead_letter` with this publisher's topology."""
        dead_letter(self, dead_letters, self.topology)


def dead_letter(
    publisher: Publisher,
    dead_letters: Sequence[DeadLetter],
    topology: Topology | None = None,
    *,
    now: datetime | None = None,
) -> None:
    """Republish each original message unchanged to the dead-letter exchange, durably.

    One transaction for all; raises `BusUnavailable` like `publish_batch`.
    """
    target = topology or publisher.topology
    moment = now or datetime.now(UTC)
    publisher._publish([dead_letter_outgoing(dl, target, moment) for dl in dead_letters])
