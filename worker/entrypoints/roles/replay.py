"""`refund-worker replay`: give dead letters or stored notifications another go.

- `replay dead-letters`: move messages from the intake dead-letter queue back to the
  bus exchange (original routing key, original body and properties, the
  dead-letter headers dropped). Each batch is published durably before it is
  acked in the dead-letter queue, so a crash duplicates at worst (intake is
  idempotent) and never loses.
- `replay notifications`: apply stored notifications again, e.g. ones that came
  for a batch the ledger did not know yet (`--outcome unknown_batch`).

The work is `worker.services.replay`'s, shared with the console.
"""

from __future__ import annotations

import argparse

from worker.adapters.postgres.pool import Database
from worker.adapters.rabbitmq import Topology
from worker.entrypoints.roles._common import boot
from worker.services.replay import replay_dead_letters, replay_notifications


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("what", choices=("dead-letters", "notifications"))
    parser.add_argument("--limit", type=int, default=1000, help="at most this many (default 1000)")
    parser.add_argument(
        "--outcome",
        default="unknown_batch",
        help="notifications: replay those stored with this outcome (default unknown_batch)",
    )
    parser.add_argument("--notify-id", help="notifications: replay just this one")


def run(args: argparse.Namespace) -> int:
    settings = boot("replay")
    if args.what == "dead-letters":
        topology = Topology.for_exchange(settings.refund_exchange)
        moved = replay_dead_letters(settings.amqp_url, topology, args.limit)
        print(f"replayed {moved} dead letters to {topology.exchange}")
        return 0
    db = Database(settings.database_url, max_size=1)
    try:
        outcomes = replay_notifications(
            db, outcome=args.outcome, limit=args.limit, notify_id=args.notify_id
        )
    finally:
        db.close()
    for notify_id, outcome in outcomes.items():
        print(f"{notify_id}\t{outcome}")
    return 0
