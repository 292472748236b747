"""Connecting to RabbitMQ: parameters, error translation, one connection and its declarations.

Every pika or socket failure leaves the adapter as `worker.domain.errors.BusUnavailable`
(`bus_errors`), with a description that never carries the URL's credentials; a queue
or exchange that already exists with other settings leaves it as
`worker.domain.errors.ConfigError` (see `worker.adapters.rabbitmq.topology`).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pika
import pika.exceptions
import structlog

from worker.adapters.rabbitmq.topology import (
    REQUESTED,
    QueueType,
    Topology,
    dead_letter_queue_arguments,
    intake_queue_arguments,
    mismatch_message,
)
from worker.domain.errors import BusUnavailable, ConfigError

# All modules of the adapter log under one name, the one its lines had as a single module.
log = structlog.get_logger("worker.adapters.rabbitmq.bus")


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


def describe_error(exc: BaseException) -> str:
    """A short, secret-free description of a pika or socket error."""
    code = getattr(exc, "reply_code", None)
    text = getattr(exc, "reply_text", None)
    if code is not None:
        return f"{type(exc).__name__} {code} {text}"
    detail = str(exc)
    return f"{type(exc).__name__}: {detail[:300]}" if detail else type(exc).__name__


@contextmanager
def bus_errors(action: str) -> Iterator[None]:
    """Translate pika and socket errors raised inside into `BusUnavailable`."""
    try:
        yield
    except (pika.exceptions.AMQPError, OSError) as exc:
        raise BusUnavailable(f"{action} failed: {describe_error(exc)}") from exc


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
        with bus_errors("connecting to RabbitMQ"):
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
        with bus_errors("opening a channel"):
            return connection.channel()

    def process_events(self, time_limit: float = 0.0) -> None:
        """Serve heartbeats and callbacks for up to `time_limit` seconds.

        Long-lived publishers that stay idle call this now and then, or the broker
        drops the connection after two missed heartbeats.
        """
        connection = self.pika_connection
        with bus_errors("processing bus events"):
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
            raise BusUnavailable(
                f"declaring {kind} {name!r} failed: {describe_error(exc)}"
            ) from exc
        except (pika.exceptions.AMQPError, OSError) as exc:
            raise BusUnavailable(
                f"declaring {kind} {name!r} failed: {describe_error(exc)}"
            ) from exc
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
            with bus_errors(f"inspecting queue {queue!r}"):
                frame = channel.queue_declare(queue, passive=True)
            return int(frame.method.message_count)
        finally:
            if channel.is_open:
                with suppress(Exception):
                    channel.close()
