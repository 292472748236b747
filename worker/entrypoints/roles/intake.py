"""`refund-worker intake`: consume `refund.requested` into the ledger.

Micro-batches of deliveries are validated and stored in one transaction each,
invalid or conflicting ones dead-lettered with a reason, and the micro-batch is
acked only after that (worker.adapters.rabbitmq.consumer.run_consumer owns the AMQP side).
"""

from __future__ import annotations

import argparse

import structlog

from worker.adapters.rabbitmq import Topology, default_connection_name, run_consumer
from worker.entrypoints import runtime
from worker.entrypoints.roles._common import boot, stop_on_signals
from worker.services.intake import handle_deliveries

log = structlog.get_logger("worker.intake")

TRANSIENT_HOLD_SECONDS = 600.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--prefetch",
        type=int,
        default=None,
        help="unacked deliveries held (default INTAKE_PREFETCH)",
    )
    parser.add_argument(
        "--max-batch",
        type=int,
        default=None,
        help="deliveries stored per transaction (default half the prefetch, so the next"
        " micro-batch arrives while one is being stored)",
    )
    parser.add_argument(
        "--max-wait",
        type=float,
        default=0.05,
        help="seconds a micro-batch waits to fill after its first message (default 0.05)",
    )


def run(args: argparse.Namespace) -> int:
    settings = boot("intake")
    rt = runtime.current()
    stop = stop_on_signals()
    prefetch = args.prefetch or settings.intake_prefetch
    # With a micro-batch as large as the prefetch, the broker has no credit left while a
    # batch is stored and starts sending the next one only after the ack: storing and
    # delivering take turns. Half the prefetch keeps one micro-batch arriving meanwhile.
    max_batch = min(prefetch, args.max_batch or max(1, prefetch // 2))
    run_consumer(
        settings.amqp_url,
        Topology.for_exchange(settings.refund_exchange),
        lambda deliveries: handle_deliveries(rt.db, deliveries, rt.merchants),
        stop=stop,
        prefetch=prefetch,
        max_batch=max_batch,
        max_wait=args.max_wait,
        queue_type=settings.intake_queue_type,  # type: ignore[arg-type]
        delivery_limit=settings.intake_delivery_limit,
        connection_name=default_connection_name("intake"),
        # Ride out a database outage holding the micro-batch (well inside RabbitMQ's
        # 30-minute consumer_timeout) rather than returning it: each return counts
        # against the quorum queue's delivery limit and would dead-letter valid requests.
        transient_hold=TRANSIENT_HOLD_SECONDS,
        # Reconnect to the broker at least every 5 s once it is back.
        max_backoff=5.0,
    )
    rt.close()
    log.info("role.stopped")
    return 0
