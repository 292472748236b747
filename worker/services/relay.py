"""The outbox relay: publish `refund.completed` rows, delete them once confirmed.

One round, in one database transaction:

1. take the rows: `DELETE ... RETURNING` over `FOR UPDATE SKIP LOCKED`, so replicas
   never publish the same row at the same time (the rows stay locked, deleted but not
   committed);
2. publish them as one batch (`BatchPublisher.publish_batch`), which returns only once
   the broker has confirmed every message (publisher confirms) and raises otherwise;
3. commit the delete.

If publishing raises (a nack, an unroutable message, no confirm in time, the bus lost)
the transaction rolls back and every row of the batch is there again. A crash at any
point before the commit does the same; rows whose messages the broker already had are
then published again with the same event_id (at-least-once, deduplicable by consumers).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import structlog

from worker.adapters.postgres import ledger
from worker.adapters.postgres.pool import Database
from worker.observability.metrics import EVENTS_PUBLISHED
from worker.services.ports import OutMessage

log = structlog.get_logger("worker.relay")


class BatchPublisher(Protocol):
    def publish_batch(self, messages: Sequence[OutMessage]) -> None: ...


def relay_once(db: Database, publisher: BatchPublisher, *, limit: int = 1000) -> int:
    """Publish up to `limit` outbox rows; returns how many were published."""
    with db.transaction() as conn:
        # Deleted inside this transaction: if publishing fails, the rollback keeps them.
        # The commit (leaving the block) comes only after the broker confirmed them all.
        rows = ledger.take_outbox(conn, limit)
        if not rows:
            return 0
        publisher.publish_batch(
            [
                OutMessage(routing_key=key, body=body.encode("utf-8"), message_id=event_id)
                for _, event_id, key, body in rows
            ]
        )
    EVENTS_PUBLISHED.inc(len(rows))
    log.debug("relay.published", count=len(rows))
    return len(rows)
