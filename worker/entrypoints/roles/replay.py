"""`refund-worker replay`: give dead letters or stored notifications another go.

- `replay dead-letters`: move messages from the intake dead-letter queue back to the
  bus exchange (original routing key, original body and properties, the
  dead-letter headers dropped). Each batch is published durably before it is
  acked in the dead-letter queue, so a crash duplicates at worst (intake is
  idempotent) and never loses.
- `replay notifications`: apply stored notifications again, e.g. ones that came
  for a batch the ledger did not know yet (`--outcome unknown_batch`).
"""

from __future__ import annotations

import argparse
import uuid

import structlog

from worker.adapters.postgres import ledger
from worker.adapters.postgres.pool import Database
from worker.adapters.rabbitmq import (
    BusConnection,
    Publisher,
    Topology,
    default_connection_name,
    delivery_from,
)
from worker.entrypoints.roles._common import boot
from worker.services.notifications import replay_stored
from worker.services.ports import OutMessage

log = structlog.get_logger("worker.replay")

# Headers added by dead-lettering (ours and the broker's), dropped on replay.
DEAD_LETTER_HEADER_PREFIXES = (
    "x-refund-dead-letter",
    "x-refund-original-routing-key",
    "x-death",
    "x-first-death-",
    "x-last-death-",
    "x-delivery-count",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("what", choices=("dead-letters", "notifications"))
    parser.add_argument("--limit", type=int, default=1000, help="at most this many (default 1000)")
    parser.add_argument(
        "--outcome",
        default="unknown_batch",
        help="notifications: replay those stored with this outcome (default unknown_batch)",
    )
    parser.add_argument("--notify-id", help="notifications: replay just this one")


def replay_dead_letters(amqp_url: str, topology: Topology, limit: int) -> int:
    with BusConnection(amqp_url, connection_name=default_connection_name("replay")) as bus:
        publisher = Publisher(bus, topology)
        channel = bus.channel()
        moved = 0
        while moved < limit:
            batch: list[OutMessage] = []
            last_tag = None
            while len(batch) < min(500, limit - moved):
                method, properties, body = channel.basic_get(topology.dead_letter_queue)
                if method is None:
                    break
                delivery = delivery_from(method, properties, body)
                last_tag = delivery.delivery_tag
                headers = {
                    k: v
                    for k, v in delivery.headers.items()
                    if not str(k).startswith(DEAD_LETTER_HEADER_PREFIXES)
                }
                original_key = delivery.headers.get("x-refund-original-routing-key")
                batch.append(
                    OutMessage(
                        routing_key=str(original_key or Topology.REQUESTED),
                        body=delivery.body,
                        message_id=delivery.message_id or uuid.uuid4().hex,
                        headers=headers,
                        content_type=delivery.content_type or "application/json",
                    )
                )
            if not batch:
                break
            publisher.publish_batch(batch)
            channel.basic_ack(last_tag, multiple=True)
            moved += len(batch)
        channel.close()
    return moved


def run(args: argparse.Namespace) -> int:
    settings = boot("replay")
    if args.what == "dead-letters":
        topology = Topology.for_exchange(settings.refund_exchange)
        moved = replay_dead_letters(settings.amqp_url, topology, args.limit)
        log.info("replay.dead_letters", moved=moved)
        print(f"replayed {moved} dead letters to {topology.exchange}")
        return 0
    db = Database(settings.database_url, max_size=1)
    try:
        if args.notify_id:
            ids = [args.notify_id]
        else:
            with db.transaction() as conn:
                ids = ledger.notify_ids_with_outcome(conn, args.outcome, args.limit)
        outcomes = {notify_id: replay_stored(db, notify_id) for notify_id in ids}
    finally:
        db.close()
    for notify_id, outcome in outcomes.items():
        print(f"{notify_id}\t{outcome}")
    return 0
