"""The RabbitMQ adapter: the only module that speaks pika to the order system's bus.

Services never see pika. They receive `Delivery` objects in micro-batches from
`run_consumer`, return the ones to dead-letter as `DeadLetter`, and publish with
`Publisher.publish_batch`. Every pika or socket failure leaves this module as
`worker.domain.errors.BusUnavailable`; a queue or exchange that already exists with other
settings leaves it as `worker.domain.errors.ConfigError`.

Rules this module keeps, and why:

* Nothing is acked before its effect is stored or dead-lettered. The handler commits
  its effects, the dead letters are published in one AMQP transaction, and only then
  is the whole micro-batch acked with one `basic.ack(multiple=True)`. A crash at any
  point leaves the messages unacked, so the broker redelivers them (the handler is
  idempotent).
* Publishing is durable before it returns. `publish_batch` uses one AMQP transaction
  per batch (`tx.select` once per channel, publish everything, `tx.commit`).
  RabbitMQ answers `commit-ok` only after every message is routed and, for durable
  queues, written; unroutable messages come back as `basic.return` before the
  `commit-ok`, and make the call fail. This avoids pika's blocking publisher
  confirms, which wait for the broker once per message (about 1k msg/s).
* A transient failure of the handler (`TransientError`, e.g. `DatabaseUnavailable`)
  never acks and never dead-letters: the micro-batch is retried in process with a
  bounded exponential backoff for `transient_hold` seconds, then nacked with requeue.
* An unexpected exception from the handler is isolated: the batch is retried one
  message at a time and only the message that still fails is dead-lettered (reason
  `handler_error`), so one poison message does not take 499 good ones with it.

RabbitMQ behaviour this relies on (checked against RabbitMQ 3.10):

* Quorum queues count *every* return of a message as a failed delivery: a
  `basic.nack`/`basic.reject` with requeue, and also a consumer's channel or
  connection closing with the message unacked. With `x-delivery-limit: N` a message
  is delivered at most N + 1 times, then the broker dead-letters it itself with
  `x-first-death-reason: delivery_limit` (and none of this module's reason headers).
  The header `x-delivery-count` is present from the first delivery (value 0).
  That is why transient failures are held in process rather than nacked at once: a
  database fail-over of a minute would otherwise spend the whole budget and send
  valid refund requests to the dead-letter queue.
* `x-dead-letter-strategy: at-least-once` (broker-side dead-lettering with internal
  publisher confirms) only takes effect together with `x-overflow: reject-publish`
  and a dead-letter exchange; with the default `drop-head` the queue silently falls
  back to at-most-once. No `x-max-length` is set, so `reject-publish` never rejects.
* Queue arguments are fixed at declaration: declaring an existing queue with any
  other argument closes the channel with 406 PRECONDITION_FAILED naming that
  argument. Changing `delivery_limit` or `queue_type` therefore means deleting the
  (empty) queue, or using a policy instead of arguments.
* A classic queue declared without `x-queue-type` accepts a later declaration with
  `x-queue-type: classic`; a quorum queue refuses one without `x-queue-type`.
"""

from __future__ import annotations

import os
import random
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, ClassVar, Literal
from urllib.parse import parse_qs, urlsplit

import pika
import pika.exceptions
import structlog

from worker.domain.errors import BusUnavailable, ConfigError, TransientError

log = structlog.get_logger(__name__)

REQUESTED = "refund.requested"
COMPLETED = "refund.completed"

HEADER_REASON = "x-refund-dead-letter-reason"
HEADER_DETAIL = "x-refund-dead-letter-detail"
HEADER_DEAD_LETTERED_AT = "x-refund-dead-lettered-at"
HEADER_ORIGINAL_ROUTING_KEY = "x-refund-original-routing-key"

# Dead-letter details are for a human reading the queue; keep headers small.
DETAIL_MAX_BYTES = 1024
# The consumer wakes up at least this often to notice `stop` while idle.
POLL_SECONDS = 0.2
PERSISTENT = 2

QueueType = Literal["quorum", "classic"]
_AMQP_SHORTSTR_MAX = 255


@dataclass(frozen=True)
class Topology:
    """Every name of the bus, derived from the exchange name.

    Deriving all names from `REFUND_EXCHANGE` means one setting isolates a whole
    deployment (or a test run with a random exchange name) from any other.
    """

    REQUESTED: ClassVar[str] = REQUESTED
    COMPLETED: ClassVar[str] = COMPLETED

    exchange: str
    intake_queue: str
    dead_letter_exchange: str
    dead_letter_queue: str

    @classmethod
    def for_exchange(cls, exchange: str) -> Topology:
        """Names for the bus exchange `exchange` (a durable topic exchange)."""
        if not exchange or exchange.startswith("amq."):
            raise ConfigError(f"exchange name {exchange!r} is empty or reserved (amq.*)")
        topology = cls(
            exchange=exchange,
            intake_queue=f"{exchange}.{REQUESTED}",
            dead_letter_exchange=f"{exchange}.dlx",
            dead_letter_queue=f"{exchange}.{REQUESTED}.dlq",
        )
        if len(topology.dead_letter_queue.encode()) > _AMQP_SHORTSTR_MAX:
            raise ConfigError(f"exchange name {exchange!r} is too long for AMQP names")
        return topology


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


BatchHandler = Callable[[Sequence[Delivery]], Sequence[DeadLetter]]


@dataclass(frozen=True)
class _Outgoing:
    """A fully resolved publish: what goes on the wire."""

    exchange: str
    routing_key: str
    body: bytes
    properties: Any  # pika.BasicProperties


# --------------------------------------------------------------------------------------
# Pure helpers (unit-tested without a broker)
# --------------------------------------------------------------------------------------

_KEPT_PROPERTIES = (
    "content_encoding",
    "correlation_id",
    "reply_to",
    "timestamp",
    "type",
    "app_id",
    "priority",
)


def default_connection_name(role: str) -> str:
    """`refund-worker.<role>@<host>#<pid>`: tells replicas apart in the broker's UI."""
    return f"refund-worker.{role}@{socket.gethostname()}#{os.getpid()}"


def connection_parameters(
    amqp_url: str,
    *,
    connection_name: str,
    heartbeat: int = 60,
    blocked_connection_timeout: float = 60.0,
) -> Any:
    """pika parameters for `amqp_url`, named `connection_name`.

    Settings given in the URL's query (`?heartbeat=...`) win over the arguments.
    The URL carries the password, so errors about it never repeat it.
    """
    try:
        params = pika.URLParameters(amqp_url)
        query = parse_qs(urlsplit(amqp_url).query)
    except Exception as exc:  # pika raises ValueError, TypeError, KeyError...
        raise ConfigError(f"AMQP_URL is not a valid AMQP URL ({type(exc).__name__})") from None
    if "heartbeat" not in query:
        params.heartbeat = heartbeat
    if "blocked_connection_timeout" not in query:
        params.blocked_connection_timeout = blocked_connection_timeout
    properties = dict(params.client_properties or {})
    properties["connection_name"] = connection_name
    params.client_properties = properties
    return params


def describe_endpoint(params: Any) -> dict[str, object]:
    """Host, port and vhost of a connection, for logs (never the credentials)."""
    return {"host": params.host, "port": params.port, "vhost": params.virtual_host}


def intake_queue_arguments(
    topology: Topology, queue_type: QueueType, delivery_limit: int
) -> dict[str, object]:
    """Arguments of the intake queue.

    Quorum: a delivery limit bounds crash loops on a poison message, and
    at-least-once dead-lettering (which needs `x-overflow: reject-publish`) makes
    the broker's own dead-lettering as safe as ours. Classic: only the DLX, since
    classic queues have no delivery limit.
    """
    if queue_type == "quorum":
        if delivery_limit < 0:
            raise ConfigError(f"delivery_limit must be >= 0, got {delivery_limit}")
        return {
            "x-queue-type": "quorum",
            "x-delivery-limit": delivery_limit,
            "x-dead-letter-exchange": topology.dead_letter_exchange,
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        }
    if queue_type == "classic":
        return {"x-dead-letter-exchange": topology.dead_letter_exchange}
    raise ConfigError(f"queue_type must be 'quorum' or 'classic', got {queue_type!r}")


def dead_letter_queue_arguments(queue_type: QueueType) -> dict[str, object]:
    """The dead-letter queue has the intake queue's type and no limits."""
    return {"x-queue-type": "quorum"} if queue_type == "quorum" else {}


def mismatch_message(kind: str, name: str, declared: Mapping[str, object], reply: str) -> str:
    """The ConfigError text for a 406 PRECONDITION_FAILED on a declaration."""
    wanted = ", ".join(f"{k}={v!r}" for k, v in sorted(declared.items())) or "no arguments"
    return (
        f"{kind} {name!r} already exists with other settings than this worker declares "
        f"({wanted}); the broker says: {reply}. Delete the {kind} (it must be empty) or "
        f"configure the worker to match."
    )


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


def outgoing_for(message: OutMessage, default_exchange: str) -> _Outgoing:
    """The wire form of an `OutMessage`: persistent, with its id and content type."""
    properties = pika.BasicProperties(
        delivery_mode=PERSISTENT,
        content_type=message.content_type,
        message_id=message.message_id,
        headers=dict(message.headers) or None,
    )
    exchange = default_exchange if message.exchange is None else message.exchange
    return _Outgoing(exchange, message.routing_key, message.body, properties)


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


def dead_letter_outgoing(letter: DeadLetter, topology: Topology, now: datetime) -> _Outgoing:
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
    return _Outgoing(topology.dead_letter_exchange, original.routing_key, original.body, properties)


class Backoff:
    """Bounded exponential backoff with full jitter: delay n is in [d/2, d], d = base*2**n."""

    def __init__(self, base: float = 0.2, cap: float = 30.0) -> None:
        if base <= 0 or cap <= 0:
            raise ValueError("backoff needs a positive base and cap")
        self.base = min(base, cap)
        self.cap = cap
        self.attempt = 0

    def next(self) -> float:
        """The next delay in seconds; grows until `cap`."""
        ceiling = min(self.cap, self.base * (2 ** min(self.attempt, 32)))
        self.attempt += 1
        return random.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        """Start again from `base` (after a success)."""
        self.attempt = 0


def _describe(exc: BaseException) -> str:
    """A short, secret-free description of a pika or socket error."""
    code = getattr(exc, "reply_code", None)
    text = getattr(exc, "reply_text", None)
    if code is not None:
        return f"{type(exc).__name__} {code} {text}"
    detail = str(exc)
    return f"{type(exc).__name__}: {detail[:300]}" if detail else type(exc).__name__


@contextmanager
def _bus_errors(action: str) -> Iterator[None]:
    """Translate pika and socket errors raised inside into `BusUnavailable`."""
    try:
        yield
    except (pika.exceptions.AMQPError, OSError) as exc:
        raise BusUnavailable(f"{action} failed: {_describe(exc)}") from exc


# --------------------------------------------------------------------------------------
# Connection, declarations, publishing
# --------------------------------------------------------------------------------------


class BusConnection:
    """One `pika.BlockingConnection`, opened on `__enter__` (or `connect()`).

    Not thread-safe: one BusConnection per thread. After a failure (any method raised
    `BusUnavailable`) the next `connect()` or `channel()` opens a new connection.
    """

    def __init__(
        self,
        amqp_url: str,
        *,
        connection_name: str | None = None,
        heartbeat: int = 60,
        blocked_connection_timeout: float = 60.0,
    ) -> None:
        self.connection_name = connection_name or default_connection_name("bus")
        self._params = connection_parameters(
            amqp_url,
            connection_name=self.connection_name,
            heartbeat=heartbeat,
            blocked_connection_timeout=blocked_connection_timeout,
        )
        self._connection: Any = None
        self.generation = 0  # increases with each new underlying connection

    def __enter__(self) -> BusConnection:
        self.connect()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def is_open(self) -> bool:
        return self._connection is not None and bool(self._connection.is_open)

    def connect(self) -> None:
        """Open the connection unless it is open already."""
        if self.is_open:
            return
        with _bus_errors("connecting to RabbitMQ"):
            self._connection = pika.BlockingConnection(self._params)
        self.generation += 1
        log.info(
            "bus.connected", connection_name=self.connection_name, **describe_endpoint(self._params)
        )

    def close(self) -> None:
        """Close cleanly if open; never raises.

        Logs `bus.disconnected` only for a clean close: a connection that was lost
        is reported by whoever saw the error, with the error.
        """
        connection, self._connection = self._connection, None
        if connection is None or not connection.is_open:
            return
        with suppress(Exception):
            connection.close()
        log.info("bus.disconnected", connection_name=self.connection_name, reason="closed")

    @property
    def pika_connection(self) -> Any:
        """The underlying BlockingConnection (connecting if needed)."""
        self.connect()
        return self._connection

    def channel(self) -> Any:
        """A new channel on this connection."""
        connection = self.pika_connection
        with _bus_errors("opening a channel"):
            return connection.channel()

    def process_events(self, time_limit: float = 0.0) -> None:
        """Serve heartbeats and callbacks for up to `time_limit` seconds.

        Long-lived publishers that stay idle call this now and then, or the broker
        drops the connection after two missed heartbeats.
        """
        connection = self.pika_connection
        with _bus_errors("processing bus events"):
            connection.process_data_events(time_limit=time_limit)

    @contextmanager
    def _declaring(self, kind: str, name: str, declared: Mapping[str, object]) -> Iterator[Any]:
        """A throw-away channel for one declaration; 406 becomes `ConfigError`."""
        channel = self.channel()
        try:
            yield channel
        except pika.exceptions.ChannelClosedByBroker as exc:
            if exc.reply_code == 406:
                raise ConfigError(mismatch_message(kind, name, declared, exc.reply_text)) from None
            raise BusUnavailable(f"declaring {kind} {name!r} failed: {_describe(exc)}") from exc
        except (pika.exceptions.AMQPError, OSError) as exc:
            raise BusUnavailable(f"declaring {kind} {name!r} failed: {_describe(exc)}") from exc
        finally:
            if channel.is_open:
                with suppress(Exception):
                    channel.close()

    def _declare_exchange(self, name: str, exchange_type: str) -> None:
        with self._declaring("exchange", name, {"type": exchange_type}) as channel:
            channel.exchange_declare(name, exchange_type=exchange_type, durable=True)

    def _declare_queue(self, name: str, arguments: dict[str, object]) -> None:
        with self._declaring("queue", name, arguments) as channel:
            channel.queue_declare(name, durable=True, arguments=arguments or None)

    def _bind(self, queue: str, exchange: str, routing_key: str) -> None:
        with self._declaring("binding of queue", queue, {"routing_key": routing_key}) as channel:
            channel.queue_bind(queue, exchange, routing_key=routing_key)

    def declare_bus(self, topology: Topology) -> None:
        """Declare the bus: a durable topic exchange. Idempotent."""
        self._declare_exchange(topology.exchange, "topic")

    def declare_intake(
        self,
        topology: Topology,
        *,
        queue_type: QueueType = "quorum",
        delivery_limit: int = 5,
    ) -> None:
        """Declare the bus, the dead-letter exchange and queue, and the intake queue.

        Idempotent, so replicas may start together. The dead-letter exchange is a
        fanout, so both this module's dead letters and the broker's own
        (delivery limit) land in the dead-letter queue whatever their routing key.
        Raises `ConfigError` if a queue or exchange exists with other settings.
        """
        arguments = intake_queue_arguments(topology, queue_type, delivery_limit)
        self.declare_bus(topology)
        self._declare_exchange(topology.dead_letter_exchange, "fanout")
        self._declare_queue(topology.dead_letter_queue, dead_letter_queue_arguments(queue_type))
        self._bind(topology.dead_letter_queue, topology.dead_letter_exchange, "")
        self._declare_queue(topology.intake_queue, arguments)
        self._bind(topology.intake_queue, topology.exchange, REQUESTED)

    def message_count(self, queue: str) -> int:
        """Messages ready in `queue` (unacked ones are not counted)."""
        channel = self.channel()
        try:
            with _bus_errors(f"inspecting queue {queue!r}"):
                frame = channel.queue_declare(queue, passive=True)
            return int(frame.method.message_count)
        finally:
            if channel.is_open:
                with suppress(Exception):
                    channel.close()


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
        with _bus_errors("opening a publishing transaction"):
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

    def _publish(self, items: Sequence[_Outgoing]) -> None:
        if not items:
            return
        channel = self._tx_channel()
        self._returned = []
        try:
            with _bus_errors(f"publishing {len(items)} messages"):
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


# --------------------------------------------------------------------------------------
# The consumer
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConsumerSettings:
    """How `run_consumer` batches, retries and reconnects."""

    prefetch: int = 500
    max_batch: int = 500
    max_wait: float = 0.05
    queue_type: QueueType = "quorum"
    delivery_limit: int = 5
    transient_hold: float = 60.0
    max_backoff: float = 30.0
    connection_name: str = field(default_factory=lambda: default_connection_name("intake"))
    heartbeat: int = 60

    def __post_init__(self) -> None:
        if self.prefetch < 1 or self.max_batch < 1:
            raise ConfigError("prefetch and max_batch must be at least 1")
        if self.max_batch > self.prefetch:
            raise ConfigError(
                f"max_batch ({self.max_batch}) must not exceed prefetch ({self.prefetch}): "
                "the broker never hands out more unacked messages than the prefetch"
            )
        if self.max_wait < 0 or self.transient_hold < 0:
            raise ConfigError("max_wait and transient_hold must be >= 0")
        if self.max_backoff <= 0:
            raise ConfigError("max_backoff must be > 0")


@dataclass(frozen=True)
class _Held:
    delivery: Delivery
    arrived: float


class _Session:
    """One connection's worth of consuming; raises BusUnavailable when it breaks."""

    def __init__(
        self,
        bus: BusConnection,
        topology: Topology,
        handler: BatchHandler,
        settings: ConsumerSettings,
        stop: threading.Event,
    ) -> None:
        self.bus = bus
        self.topology = topology
        self.handler = handler
        self.settings = settings
        self.stop = stop
        self.buffer: deque[_Held] = deque()
        self.cancelled_by_broker = False
        self.backoff = Backoff(cap=settings.max_backoff)
        self.channel: Any = None
        self.consumer_tag: str | None = None
        self.publisher = Publisher(bus, topology)

    def run(self) -> None:
        """Consume until `stop` is set, then settle what is in hand and return."""
        with _bus_errors("consuming the intake queue"):
            self.channel = self.bus.channel()
            self.channel.basic_qos(prefetch_count=self.settings.prefetch)
            self.channel.add_on_cancel_callback(self._on_cancel)
            self.consumer_tag = self.channel.basic_consume(
                self.topology.intake_queue, self._on_message, auto_ack=False
            )
            while not self.stop.is_set():
                if self.cancelled_by_broker:
                    raise BusUnavailable("the broker cancelled the consumer (queue deleted?)")
                batch = self._gather()
                if batch:
                    self._settle(batch)
            # Stop taking work; settle what was already handed to us, then close.
            self.channel.basic_cancel(self.consumer_tag)
            while self.buffer:
                self._settle(self._take())
            self.channel.close()

    def _on_message(self, _channel: Any, method: Any, properties: Any, body: bytes) -> None:
        self.buffer.append(_Held(delivery_from(method, properties, body), time.monotonic()))

    def _on_cancel(self, _frame: Any) -> None:
        self.cancelled_by_broker = True

    def _events(self, time_limit: float) -> None:
        self.bus.pika_connection.process_data_events(time_limit=max(0.0, time_limit))

    def _gather(self) -> list[Delivery]:
        """Up to max_batch deliveries, waiting at most max_wait after the first."""
        if not self.buffer:
            self._events(POLL_SECONDS)
            if not self.buffer:
                return []
        deadline = self.buffer[0].arrived + self.settings.max_wait
        while len(self.buffer) < self.settings.max_batch and not self.stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self._events(remaining)
        return self._take()

    def _take(self) -> list[Delivery]:
        count = min(len(self.buffer), self.settings.max_batch)
        return [self.buffer.popleft().delivery for _ in range(count)]

    def _pause(self, seconds: float) -> None:
        """Wait, serving heartbeats (new deliveries are buffered), unless stopping."""
        deadline = time.monotonic() + seconds
        while not self.stop.is_set() and (remaining := deadline - time.monotonic()) > 0:
            self._events(min(remaining, POLL_SECONDS))

    def _settle(self, batch: list[Delivery]) -> None:
        """Handle, dead-letter and ack one micro-batch; on transient failure hold or nack."""
        last_tag = batch[-1].delivery_tag
        started = time.monotonic()
        while True:
            try:
                dead = self._handle(batch)
                break
            except TransientError as exc:
                log.warning(
                    "intake.transient_failure",
                    error_type=type(exc).__name__,
                    error=str(exc)[:300],
                    size=len(batch),
                )
                held_for = time.monotonic() - started
                if self.stop.is_set() or held_for >= self.settings.transient_hold:
                    self.channel.basic_nack(delivery_tag=last_tag, multiple=True, requeue=True)
                    log.info(
                        "intake.batch_released", size=len(batch), held_seconds=round(held_for, 3)
                    )
                    self._pause(self.backoff.next())
                    return
                self._pause(self.backoff.next())
        self.backoff.reset()
        if dead:
            self.publisher.dead_letter(dead)
        self.channel.basic_ack(delivery_tag=last_tag, multiple=True)
        log.debug(
            "intake.batch",
            size=len(batch),
            dead_lettered=len(dead),
            redelivered=sum(d.redelivered for d in batch),
        )

    def _handle(self, batch: list[Delivery]) -> list[DeadLetter]:
        """Call the handler; isolate an unexpected failure to the message causing it."""
        try:
            return list(self.handler(batch))
        except TransientError:
            raise
        except Exception as exc:
            log.error(
                "intake.handler_error",
                error_type=type(exc).__name__,
                size=len(batch),
                exc_info=True,
            )
            if len(batch) == 1:
                return [_handler_error_letter(batch[0], exc)]
        dead: list[DeadLetter] = []
        for delivery in batch:
            try:
                dead.extend(self.handler([delivery]))
            except TransientError:
                raise
            except Exception as exc:
                log.error(
                    "intake.handler_error",
                    error_type=type(exc).__name__,
                    size=1,
                    message_id=delivery.message_id,
                    exc_info=True,
                )
                dead.append(_handler_error_letter(delivery, exc))
        return dead


def _handler_error_letter(delivery: Delivery, exc: Exception) -> DeadLetter:
    return DeadLetter(delivery, "handler_error", f"{type(exc).__name__}: {exc}")


def run_consumer(
    amqp_url: str,
    topology: Topology,
    handler: BatchHandler,
    *,
    stop: threading.Event,
    prefetch: int = 500,
    max_batch: int = 500,
    max_wait: float = 0.05,
    queue_type: QueueType = "quorum",
    delivery_limit: int = 5,
    transient_hold: float = 60.0,
    max_backoff: float = 30.0,
    connection_name: str | None = None,
    heartbeat: int = 60,
) -> None:
    """Consume the intake queue in micro-batches until `stop` is set.

    Declares the topology, then repeatedly gathers up to `max_batch` deliveries (or
    what arrived within `max_wait` seconds of the first), calls `handler` once, publishes
    the dead letters it returns as one durable batch, and acks the micro-batch with
    one `basic.ack(multiple=True)`.

    `TransientError` from the handler: the batch is retried in process with backoff
    (at most `max_backoff` seconds apart) for `transient_hold` seconds, then nacked with
    requeue; nothing is acked that was not stored or dead-lettered. A lost connection
    is reopened with backoff; unacked deliveries come back marked `redelivered`.
    When `stop` is set the consumer stops taking work, settles what it holds, closes
    cleanly and returns. `ConfigError` (mismatching queue arguments) is raised.

    The handler runs on this thread between I/O: it must return well within two
    heartbeat intervals (`heartbeat`, default 60 s) or the broker drops the connection.
    """
    settings = ConsumerSettings(
        prefetch=prefetch,
        max_batch=max_batch,
        max_wait=max_wait,
        queue_type=queue_type,
        delivery_limit=delivery_limit,
        transient_hold=transient_hold,
        max_backoff=max_backoff,
        connection_name=connection_name or default_connection_name("intake"),
        heartbeat=heartbeat,
    )
    intake_queue_arguments(topology, queue_type, delivery_limit)  # validate before connecting
    reconnect = Backoff(base=0.2, cap=max_backoff)
    while not stop.is_set():
        bus = BusConnection(amqp_url, connection_name=settings.connection_name, heartbeat=heartbeat)
        started = time.monotonic()
        try:
            bus.connect()
            bus.declare_intake(topology, queue_type=queue_type, delivery_limit=delivery_limit)
            _Session(bus, topology, handler, settings, stop).run()
            bus.close()
            return
        except BusUnavailable as exc:
            bus.close()
            if time.monotonic() - started > 10:
                reconnect.reset()
            delay = reconnect.next()
            log.warning(
                "bus.disconnected",
                connection_name=settings.connection_name,
                error=str(exc),
                retry_in=round(delay, 2),
            )
            stop.wait(delay)
        except BaseException:
            bus.close()
            raise


# --------------------------------------------------------------------------------------
# Small helpers for readiness checks, tests and benchmarks
# --------------------------------------------------------------------------------------


def bus_ping(amqp_url: str, *, exchange: str | None = None, timeout: float = 5.0) -> None:
    """Readiness: connect, open a channel, optionally check `exchange` exists.

    Raises `BusUnavailable` if any step fails.
    """
    params = connection_parameters(amqp_url, connection_name=default_connection_name("ping"))
    params.socket_timeout = timeout
    params.stack_timeout = timeout
    params.connection_attempts = 1
    with _bus_errors("pinging RabbitMQ"):
        connection = pika.BlockingConnection(params)
        try:
            channel = connection.channel()
            if exchange is not None:
                channel.exchange_declare(exchange, passive=True)
        finally:
            if connection.is_open:
                connection.close()


def drain(
    amqp_url: str,
    queue: str,
    *,
    expect: int | None = None,
    idle_timeout: float = 2.0,
    prefetch: int = 1000,
) -> list[Delivery]:
    """Take and ack messages from `queue` until `expect` were read or none came for
    `idle_timeout` seconds. For tests, benchmarks and operators, not for services."""
    taken: list[Delivery] = []
    acked = 0
    ack_every = max(1, prefetch // 2)
    with BusConnection(amqp_url, connection_name=default_connection_name("drain")) as bus:
        channel = bus.channel()
        with _bus_errors(f"draining {queue!r}"):
            channel.basic_qos(prefetch_count=prefetch)
            for method, properties, body in channel.consume(
                queue, auto_ack=False, inactivity_timeout=idle_timeout
            ):
                if method is None:
                    break
                taken.append(delivery_from(method, properties, body))
                if len(taken) - acked >= ack_every:
                    channel.basic_ack(method.delivery_tag, multiple=True)
                    acked = len(taken)
                if expect is not None and len(taken) >= expect:
                    break
            if len(taken) > acked:
                channel.basic_ack(taken[-1].delivery_tag, multiple=True)
            channel.cancel()
            channel.close()
    return taken


def delete_topology(amqp_url: str, topology: Topology) -> None:
    """Delete the queues and exchanges of `topology` (missing ones are fine)."""
    with BusConnection(amqp_url, connection_name=default_connection_name("cleanup")) as bus:
        for queue in (topology.intake_queue, topology.dead_letter_queue):
            with (
                _bus_errors(f"deleting queue {queue!r}"),
                suppress(pika.exceptions.ChannelClosedByBroker),
            ):
                bus.channel().queue_delete(queue)
        for exchange in (topology.exchange, topology.dead_letter_exchange):
            with (
                _bus_errors(f"deleting exchange {exchange!r}"),
                suppress(pika.exceptions.ChannelClosedByBroker),
            ):
                bus.channel().exchange_delete(exchange)
