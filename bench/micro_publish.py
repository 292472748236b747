"""Publishing one batch of messages: the publisher's confirm path against AMQP transactions.

    .venv/bin/python bench/micro_publish.py [--messages 1000] [--rounds 15]

`Publisher.publish_batch` (worker/adapters/rabbitmq/publisher.py) queues every frame
of a batch on pika's underlying channel of a confirm-mode channel, writes them
together and waits for the broker's confirms of the whole batch. Two variants publish
the same batch in one AMQP transaction instead: `tx` queues the frames on the
underlying channel the same way and lets `tx.commit` write them (what the publisher
did before confirms), `plain pika` is the straightforward call,
`BlockingChannel.basic_publish` for each message (one socket write each), then
`tx.commit`. All three publish the same persistent, mandatory messages, and return
once the broker holds every one of them, to a durable queue of their own (a temporary
exchange, deleted afterwards) on the local RabbitMQ (`BENCH_AMQP_URL`, by default the
development stack's). The rounds alternate between the variants; the script prints
the median wall time and client CPU time per batch of each, and the ratios to the
confirm path.
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


def _transactional(
    bus: BusConnection, topology: Topology, *, frames_together: bool
) -> Callable[[Sequence[OutMessage]], None]:
    """One transactional channel: publish every message, then `tx.commit`.

    `frames_together` queues the frames on pika's underlying channel, for the commit to
    write them together; otherwise `BlockingChannel.basic_publish` writes each one.
    """
    channel = bus.channel()
    returned: list[Any] = []
    channel.add_on_return_callback(lambda _ch, method, _props, _body: returned.append(method))
    channel.tx_select()
    basic_publish = channel._impl.basic_publish if frames_together else channel.basic_publish

    def publish(messages: Sequence[OutMessage]) -> None:
        for message in messages:
            item = outgoing_for(message, topology.exchange)
            basic_publish(
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
    parser.add_argument("--messages", type=int, default=1000, help="messages per batch")
    parser.add_argument("--rounds", type=int, default=15, help="batches per variant")
    args = parser.parse_args()
    # Only the numbers: the adapter's connect and close lines would interleave with them.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))

    topology = Topology.for_exchange(f"bench-micro-publish-{uuid.uuid4().hex[:8]}")
    queue = f"{topology.exchange}.{COMPLETED}"
    batch = _messages(args.messages)
    timings: dict[str, list[tuple[float, float]]] = {"confirms": [], "tx": [], "plain pika": []}
    try:
        with BusConnection(AMQP_URL, connection_name=default_connection_name("bench")) as bus:
            bus.declare_bus(topology)
            setup = bus.channel()
            setup.queue_declare(queue, durable=True)
            setup.queue_bind(queue, topology.exchange, routing_key=COMPLETED)
            variants = {
                "confirms": Publisher(bus, topology).publish_batch,
                "tx": _transactional(bus, topology, frames_together=True),
                "plain pika": _transactional(bus, topology, frames_together=False),
            }
            for publish in variants.values():  # warm up: channels, select, first frames
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

    print(f"{args.messages} messages per batch, median of {args.rounds} rounds")
    medians = {}
    for name, rows in timings.items():
        wall = statistics.median(w for w, _ in rows)
        cpu = statistics.median(c for _, c in rows)
        medians[name] = (wall, cpu)
        print(
            f"  {name:<10}  wall {wall * 1000:8.2f} ms  ({args.messages / wall:9.0f} msg/s)"
            f"   client CPU {cpu * 1000:8.2f} ms"
        )
    confirm_wall, confirm_cpu = medians["confirms"]
    for name in ("tx", "plain pika"):
        wall, cpu = medians[name]
        print(
            f"  {name} / confirms: wall x{wall / confirm_wall:.2f},"
            f" client CPU x{cpu / max(confirm_cpu, 1e-9):.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
