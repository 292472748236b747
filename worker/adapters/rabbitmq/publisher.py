"""Publishing to the bus durably, in batches, with asynchronous publisher confirms.

The publishing channel is put in confirm mode once (`confirm.select`). A batch is
published whole (persistent, mandatory), then `publish_batch` serves the connection
until the broker has confirmed every delivery tag of the batch (one `basic.ack` with
`multiple` may cover many) and returns only then: RabbitMQ confirms a persistent
message once every durable queue it was routed to has written it. A `basic.nack`, a
`basic.return` (unroutable: no binding for the routing key), no confirm within
`confirm_timeout` seconds, or a lost channel or connection makes the call raise
`BusUnavailable`; the caller then treats the whole batch as not published (some of it
may have been, so consumers deduplicate by message_id). RabbitMQ sends the
`basic.return` of a message before its `basic.ack`, so every return of a batch has been
seen once the batch is confirmed. Dead letters go out the same way, to the
dead-letter exchange.

Unlike an AMQP transaction (`tx.commit`, one round trip that the broker serialises
per channel), confirms stream back while the batch is still being written, and unlike
pika's blocking confirm mode (`BlockingChannel.confirm_delivery`) nothing waits once per
message. Everything goes through pika's underlying channel (`channel._impl`): its
frames are queued and written together, rather than one socket write per message
through `BlockingChannel.basic_publish`, and its ack, nack and return callbacks run
as the frames arrive (the blocking channel would hold returns back until it
dispatches them). `bench/micro_publish.py` measures both choices.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from datetime import UTC, datetime
from typing import Any

import pika.spec

from worker.adapters.rabbitmq.connection import BusConnection, bus_errors, describe_error
from worker.adapters.rabbitmq.topology import Topology
from worker.adapters.rabbitmq.wire import Outgoing, dead_letter_outgoing, outgoing_for
from worker.domain.errors import BusUnavailable
from worker.services.ports import DeadLetter, OutMessage

# As long as the connection's blocked_connection_timeout: a broker under a resource
# alarm holds publishes back rather than refusing them.
DEFAULT_CONFIRM_TIMEOUT = 60.0


def _nothing() -> None:
    """The wake-up timer's callback: its only effect is to end `process_data_events`."""


class Publisher:
    """Publishes batches durably on its own confirm-mode channel of a BusConnection.

    Not thread-safe, like its connection.
    """

    def __init__(
        self,
        connection: BusConnection,
        topology: Topology,
        *,
        confirm_timeout: float = DEFAULT_CONFIRM_TIMEOUT,
    ) -> None:
        self._bus = connection
        self.topology = topology
        self.confirm_timeout = confirm_timeout
        self._channel: Any = None
        self._connection: Any = None  # the BlockingConnection the channel is on
        self._generation = -1
        self._selected = False
        self._next_tag = 1  # the delivery tag the broker gives the channel's next publish
        self._unconfirmed: set[int] = set()
        self._nacked = 0
        self._returned: list[Any] = []
        self._closed: BaseException | None = None

    # --- the channel --------------------------------------------------------------

    def _confirm_channel(self) -> Any:
        if (
            self._channel is not None
            and self._channel.is_open
            and self._selected
            and self._closed is None
            and self._generation == self._bus.generation
        ):
            return self._channel
        self._discard_channel()
        channel = self._bus.channel()
        self._channel, self._generation = channel, self._bus.generation
        self._connection = self._bus.pika_connection
        self._closed, self._selected, self._next_tag = None, False, 1
        impl = channel._impl
        what = "opening a publishing channel in confirm mode"
        try:
            with bus_errors(what):
                impl.add_on_return_callback(self._on_return)
                impl.add_on_close_callback(self._on_close)
                impl.confirm_delivery(self._on_confirm, callback=self._on_select_ok)
            self._serve_until(lambda: self._selected, what)
        except BusUnavailable:
            self._discard_channel()
            raise
        return channel

    def _discard_channel(self) -> None:
        channel, self._channel = self._channel, None
        self._unconfirmed = set()
        if channel is not None and channel.is_open:
            with suppress(Exception):
                channel.close()

    # --- callbacks, run by pika as the frames arrive --------------------------------

    def _wake(self) -> None:
        # A due timer ends the `process_data_events` of `_serve_until` at once, instead
        # of at its time limit: the callbacks on the underlying channel do not.
        if self._connection is not None:
            with suppress(Exception):
                self._connection.call_later(0, _nothing)

    def _on_select_ok(self, _frame: Any) -> None:
        self._selected = True
        self._wake()

    def _is_current(self, impl: Any) -> bool:
        # A discarded channel's late callbacks must not touch the current batch.
        return self._channel is not None and impl is self._channel._impl

    def _on_confirm(self, frame: Any) -> None:
        if self._channel is None or frame.channel_number != self._channel.channel_number:
            return
        method = frame.method
        tag = int(method.delivery_tag)
        before = len(self._unconfirmed)
        if not method.multiple:
            self._unconfirmed.discard(tag)
        elif tag >= self._next_tag - 1:
            self._unconfirmed.clear()
        else:
            self._unconfirmed = {t for t in self._unconfirmed if t > tag}
        if isinstance(method, pika.spec.Basic.Nack):
            self._nacked += before - len(self._unconfirmed)
        if not self._unconfirmed:
            self._wake()

    def _on_return(self, channel: Any, method: Any, _properties: Any, _body: bytes) -> None:
        if self._is_current(channel):
            self._returned.append(method)

    def _on_close(self, channel: Any, reason: BaseException) -> None:
        if self._is_current(channel):
            self._closed = reason
            self._wake()

    # --- publishing -----------------------------------------------------------------

    def publish_batch(self, messages: Sequence[OutMessage]) -> None:
        """Publish every message; return once the broker has confirmed them all.

        Raises `BusUnavailable` if the bus fails, the broker nacks a message, any
        message is unroutable, or the confirms do not all arrive within
        `confirm_timeout`; the caller then treats the whole batch as not published
        (some may have been, so consumers deduplicate by message_id).
        """
        self._publish([outgoing_for(m, self.topology.exchange) for m in messages])

    def _publish(self, items: Sequence[Outgoing]) -> None:
        if not items:
            return
        channel = self._confirm_channel()
        self._returned, self._nacked = [], 0
        first, self._next_tag = self._next_tag, self._next_tag + len(items)
        self._unconfirmed = set(range(first, self._next_tag))
        what = f"publishing {len(items)} messages"
        try:
            with bus_errors(what):
                publish = channel._impl.basic_publish
                for item in items:
                    publish(
                        item.exchange,
                        item.routing_key,
                        item.body,
                        item.properties,
                        mandatory=True,
                    )
            self._await_confirms(what)
        except BusUnavailable:
            self._discard_channel()
            raise
        self._raise_for_refusals(len(items))

    def _await_confirms(self, what: str) -> None:
        """Write the queued frames and serve the connection until the batch is confirmed."""
        self._serve_until(lambda: not self._unconfirmed, what)

    def _serve_until(self, done: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + self.confirm_timeout
        while True:
            if done():
                return
            if self._closed is not None:
                raise BusUnavailable(f"{what} failed: {describe_error(self._closed)}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BusUnavailable(
                    f"{what} failed: the broker did not confirm within {self.confirm_timeout} s"
                )
            with bus_errors(what):
                self._connection.process_data_events(time_limit=remaining)

    def _raise_for_refusals(self, count: int) -> None:
        returned, nacked = self._returned, self._nacked
        self._returned, self._nacked = [], 0
        if returned:
            first = returned[0]
            raise BusUnavailable(
                f"{len(returned)} of {count} messages were unroutable (first: exchange "
                f"{first.exchange!r}, routing key {first.routing_key!r}: {first.reply_text})"
            )
        if nacked:
            raise BusUnavailable(f"the broker refused (basic.nack) {nacked} of {count} messages")

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

    One confirmed batch for all; raises `BusUnavailable` like `publish_batch`.
    """
    target = topology or publisher.topology
    moment = now or datetime.now(UTC)
    publisher._publish([dead_letter_outgoing(dl, target, moment) for dl in dead_letters])
