"""Publishing one transaction of messages: the publisher's fast path against plain pika.

    .venv/bin/python bench/micro_publish.py [--messages 1000] [--rounds 15]

`Publisher.publish_batch` (worker/adapters/rabbitmq/publisher.py) queues every frame
of a batch on pika's underlying channel and lets `tx.commit` write them together.
The straightforward call, `BlockingChannel.basic_publish` for each message, does the
same plus one socket write per message. Both variants here publish the same
persistent, mandatory messages in one AMQP transaction per batch to a durable queue
of their own (a temporary exchange, deleted afterwards) on the local RabbitMQ
(`BENCH_AMQP_URL`, by default the development stack's). The rounds alternate between
the two; the script prints the median wall time and client CPU time per batch of
each, and the ratios.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import structlog

from devtools.devstack import DEFAULT_AMQP
from worker.adapters.rabbitmq import (
    COMPLETED,
    BusConnection,
    Publisher,
    Topology,
    default_connection_name,
    delete_topology,
    outgoing_for,
)
from worker.services.ports import OutMessage

AMQP_URL = os.environ.get("BENCH_AMQP_URL", DEFAULT_AMQP)


def _messages(count: int) -> list[OutMessage]:
    """Messages about the size of a refund.completed event."""
    body = b'{"refund_id":"r-%06d","state":"succeeded","padding":"' + b"x" * 300 + b'"}'
    return [
        OutMessage(routing_key=COMPLETED, body=body % n, message_id=uuid.uuid4().hex)
        for n in range(count)
    ]


def _plain_pika(bus: BusConnection, topology: Topology) -> Callable[[Sequence[OutMessage]], None]:
    """One transactional channel; `BlockingChannel.basic_publish` per message, then commit."""
    channel = bus.channel()
    returned: list[Any] = []
    channel.add_on_return_callback(lambda _ch, method, _props, _body: returned.append(method))
    channel.tx_select()

    def publish(messages: Sequence[OutMessage]) -> None:
        for message in messages:
            item = outgoing_for(message, topology.exchange)
            channel.basic_publish(
                item.exchange, item.routing_key, item.body, item.properties, mandatory=True
            )
        channel.tx_commit()
        bus.pika_connection.process_data_events(time_limit=0)
        if returned:
            raise RuntimeError(f"{len(returned)} messages were unroutable")

    return publish


def _timed(
    publish: Callable[[Sequence[OutMessage]], None], batch: Sequence[OutMessage]
) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    publish(batch)
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1000, help="messages per transaction")
    parser.add_argument("--rounds", type=int, default=15, help="transactions per variant")
    args = parser.parse_args()
    # Only the numbers: the adapter's connect and close lines would interleave with them.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))

    topology = Topology.for_exchange(f"bench-micro-publish-{uuid.uuid4().hex[:8]}")
    queue = f"{topology.exchange}.{COMPLETED}"
    batch = _messages(args.messages)
    timings: dict[str, list[tuple[float, float]]] = {"fast path": [], "plain pika": []}
    try:
        with BusConnection(AMQP_URL, connection_name=default_connection_name("bench")) as bus:
            bus.declare_bus(topology)
            setup = bus.channel()
            setup.queue_declare(queue, durable=True)
            setup.queue_bind(queue, topology.exchange, routing_key=COMPLETED)
            variants = {
                "fast path": Publisher(bus, topology).publish_batch,
                "plain pika": _plain_pika(bus, topology),
            }
            for publish in variants.values():  # warm up: channels, tx.select, first frames
                publish(batch)
            setup.queue_purge(queue)
            for _ in range(args.rounds):
                for name, publish in variants.items():
                    timings[name].append(_timed(publish, batch))
                setup.queue_purge(queue)
            setup.queue_delete(queue)
            setup.close()
    finally:
        delete_topology(AMQP_URL, topology)

    print(f"{args.messages} messages per transaction, median of {args.rounds} rounds")
    medians = {}
    for name, rows in timings.items():
        wall = statistics.median(w for w, _ in rows)
        cpu = statistics.median(c for _, c in rows)
        medians[name] = (wall, cpu)
        print(
            f"  {name:<10}  wall {wall * 1000:8.2f} ms  ({args.messages / wall:9.0f} msg/s)"
            f"   client CPU {cpu * 1000:8.2f} ms"
        )
    (fast_wall, fast_cpu), (plain_wall, plain_cpu) = medians["fast path"], medians["plain pika"]
    print(
        f"  plain pika / fast path: wall x{plain_wall / fast_wall:.2f},"
        f" client CPU x{plain_cpu / max(fast_cpu, 1e-9):.2f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
