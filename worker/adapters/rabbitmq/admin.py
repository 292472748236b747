"""Small operations on the bus for readiness checks, operators, tests and benchmarks.

`bus_ping` is the notification server's readiness check; `drain` and
`delete_topology` serve tests, benchmarks and the development stack. Services use
none of these.
"""

from __future__ import annotations

from contextlib import suppress

import pika
import pika.exceptions

from worker.adapters.rabbitmq.connection import (
    BusConnection,
    bus_errors,
    connection_parameters,
    default_connection_name,
)
from worker.adapters.rabbitmq.topology import Topology
from worker.adapters.rabbitmq.wire import delivery_from
from worker.services.ports import Delivery


def bus_ping(amqp_url: str, *, exchange: str | None = None, timeout: float = 5.0) -> None:
    """Readiness: connect, open a channel, optionally check `exchange` exists.

    Raises `BusUnavailable` if any step fails.
    """
    params = connection_parameters(amqp_url, connection_name=default_connection_name("ping"))
    params.socket_timeout = timeout
    params.stack_timeout = timeout
    params.connection_attempts = 1
    with bus_errors("pinging RabbitMQ"):
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
        with bus_errors(f"draining {queue!r}"):
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
                bus_errors(f"deleting queue {queue!r}"),
                suppress(pika.exceptions.ChannelClosedByBroker),
            ):
                bus.channel().queue_delete(queue)
        for exchange in (topology.exchange, topology.dead_letter_exchange):
            with (
                bus_errors(f"deleting exchange {exchange!r}"),
                suppress(pika.exceptions.ChannelClosedByBroker),
            ):
                bus.channel().exchange_delete(exchange)
