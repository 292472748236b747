"""Operators' replays: dead letters back to the bus, stored notifications applied again.

Both `refund-worker replay` and the console call these.

- `replay_dead_letters`: messages of the intake dead-letter queue go back to the bus
  exchange under their original routing key, with their original body and properties
  and without the dead-letter headers (`replayed_message`). Each batch is published
  durably before it is acked in the dead-letter queue
  (`worker.adapters.rabbitmq.move_dead_letters`), so a crash duplicates at worst
  (intake is idempotent) and never loses.
- `replay_notifications`: stored notifications applied again, e.g. ones that came for a
  batch the ledger did not know yet (outcome `unknown_batch`).
"""

from __future__ import annotations

import uuid

import structlog

from worker.adapters.postgres import ledger
from worker.adapters.postgres.pool import Database
from worker.adapters.rabbitmq import HEADER_ORIGINAL_ROUTING_KEY, Topology, move_dead_letters
from worker.services.notifications import replay_stored
from worker.services.ports import Delivery, OutMessage

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
MAX_REPLAY = 100_000


def replayed_message(delivery: Delivery) -> OutMessage:
    """The message a dead letter goes back to the bus as (pure)."""
    headers = {
        k: v
        for k, v in delivery.headers.items()
        if not str(k).startswith(DEAD_LETTER_HEADER_PREFIXES)
    }
    original_key = delivery.headers.get(HEADER_ORIGINAL_ROUTING_KEY)
    return OutMessage(
        routing_key=str(original_key or Topology.REQUESTED),
        body=delivery.body,
        message_id=delivery.message_id or uuid.uuid4().hex,
        headers=headers,
        content_type=delivery.content_type or "application/json",
    )


def replay_dead_letters(
    amqp_url: str, topology: Topology, limit: int, *, operator: str | None = None
) -> int:
    """Move up to `limit` dead letters back to the bus; how many moved."""
    limit = max(0, min(limit, MAX_REPLAY))
    moved = move_dead_letters(amqp_url, topology, limit, replayed_message)
    log.info("replay.dead_letters", moved=moved, exchange=topology.exchange, operator=operator)
    return moved


def replay_notifications(
    db: Database,
    *,
    outcome: str = "unknown_batch",
    limit: int = 1000,
    notify_id: str | None = None,
    operator: str | None = None,
) -> dict[str, str | None]:
    """Apply again the stored notification `notify_id`, or up to `limit` stored with
    `outcome`; notify_id -> its new outcome (None: not stored)."""
    if notify_id:
        ids = [notify_id]
    else:
        with db.transaction() as conn:
            ids = ledger.notify_ids_with_outcome(conn, outcome, max(0, min(limit, MAX_REPLAY)))
    outcomes = {nid: replay_stored(db, nid) for nid in ids}
    log.info("replay.notifications", replayed=len(outcomes), outcome=outcome, operator=operator)
    return outcomes
