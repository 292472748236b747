"""`refund-worker relay`: publish outbox rows to the bus, one confirmed batch at a time.

Each round takes (deletes) up to `--batch` rows in a database transaction, publishes
them, waits for the broker's publisher confirms and only then commits
(`worker.services.relay`).

It wakes on PostgreSQL `NOTIFY refund_outbox` (sent by the transactions that add
rows) and polls at least every `--idle` seconds in case a wake-up was missed.
"""

from __future__ import annotations

import argparse

import psycopg
import structlog

from worker.adapters.postgres import ledger
from worker.adapters.postgres.pool import translate_errors
from worker.adapters.rabbitmq import BusConnection, Publisher, Topology, default_connection_name
from worker.domain.errors import BusUnavailable
from worker.entrypoints import runtime
from worker.entrypoints.roles._common import boot, run_loop, stop_on_signals
from worker.services.relay import relay_once

log = structlog.get_logger("worker.relay")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--batch", type=int, default=1000, help="rows per publish (default 1000)")
    parser.add_argument(
        "--idle", type=float, default=0.5, help="longest sleep when idle, seconds (default 0.5)"
    )


def run(args: argparse.Namespace) -> int:
    settings = boot("relay")
    rt = runtime.current()
    stop = stop_on_signals()
    topology = Topology.for_exchange(settings.refund_exchange)
    bus = BusConnection(settings.amqp_url, connection_name=default_connection_name("relay"))
    publisher: Publisher | None = None
    listener: psycopg.Connection[tuple[object, ...]] | None = None

    def step() -> float:
        nonlocal publisher, listener
        if listener is None or listener.closed:
            with translate_errors():
                listener = psycopg.connect(settings.database_url, autocommit=True)
                ledger.listen_for_outbox(listener)
        if publisher is None:
            bus.connect()
            bus.declare_bus(topology)
            publisher = Publisher(bus, topology)
        try:
            published = relay_once(rt.db, publisher, limit=args.batch)
        except BusUnavailable:
            bus.close()
            publisher = None
            raise
        if published:
            log.info("relay.published", count=published)
        if published >= args.batch:
            return 0.0
        try:
            with translate_errors():
                for _ in listener.notifies(timeout=args.idle, stop_after=1):
                    pass
        except Exception:
            listener.close()
            listener = None
            raise
        return 0.0

    run_loop("relay", step, stop)
    bus.close()
    if listener is not None:
        listener.close()
    rt.close()
    log.info("role.stopped")
    return 0
