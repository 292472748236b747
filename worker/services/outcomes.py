"""Turning final refunds into `refund.completed` outbox rows."""

from __future__ import annotations

from collections.abc import Sequence

import structlog

from worker.adapters.postgres import ledger
from worker.adapters.postgres.pool import Connection
from worker.contracts.events import build_refund_completed
from worker.contracts.json_text import compact

log = structlog.get_logger("worker.refund")


def completion_rows(completions: Sequence[ledger.Completion]) -> list[tuple[str, str, str]]:
    rows = []
    for c in completions:
        event = build_refund_completed(
            refund_id=c.refund_id,
            trade_no=c.trade_no,
            amount=c.amount,
            order_id=c.order_id,
            metadata=dict(c.metadata) if c.metadata is not None else None,
            status=c.status,
            code=c.code,
            batch_no=c.batch_no,
            completed_at=c.completed_at,
            merchant=c.partner,
            channel=c.channel,
            gateway_ids=c.gateway_ids,
        )
        body = compact(event)
        rows.append((str(event["event_id"]), ledger.COMPLETED_ROUTING_KEY, body))
    return rows


def record_completions(conn: Connection, completions: Sequence[ledger.Completion]) -> None:
    """Write the outbox rows for refunds that just reached a final state, and log each."""
    ledger.insert_outbox(conn, completion_rows(completions))
    for c in completions:
        log.info(
            "refund.completed",
            refund_id=c.refund_id,
            trade_no=c.trade_no,
            batch_no=c.batch_no,
            merchant=c.partner,
            channel=c.channel,
            status=c.status,
            code=c.code,
        )
