"""What the password channel reads and writes: batches waiting for an operator's approval.

A batch of a merchant on the password service is cut `awaiting_approval`; an operator
approves it (`approved`: its signed form went to the operator's browser) or rejects it
(`rejected`). See `worker/services/approvals.py` for the rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from worker.adapters.postgres.pool import Connection

# The states of the approval queue, in the order the console lists them.
QUEUE_STATES = ("awaiting_approval", "approved")


@dataclass(frozen=True, slots=True)
class QueuedBatch:
    batch_no: str
    partner: str
    state: str
    batch_day: date
    item_count: int
    total: Decimal
    created_at: datetime
    approved_by: str | None
    approved_at: datetime | None
    operator_flag: str | None
    age_seconds: float


@dataclass(frozen=True, slots=True)
class SheetRow:
    position: int
    refund_id: str
    trade_no: str
    order_id: str | None
    amount: Decimal
    reason: str | None  # as requested
    reason_sent: str  # as it goes to the gateway (made safe)
    state: str


def approval_queue(conn: Connection, batch_no: str | None = None) -> list[QueuedBatch]:
    """Batches awaiting approval or approved and not yet settled, oldest first (or one)."""
    rows = conn.execute(
        "SELECT b.batch_no, b.partner, b.state, b.batch_day, b.item_count,"
        " coalesce((SELECT sum(i.amount) FROM batch_items i WHERE i.batch_no = b.batch_no), 0),"
        " b.created_at, b.approved_by, b.approved_at, b.operator_flag,"
        " extract(epoch FROM clock_timestamp() - b.created_at)"
        " FROM batches b WHERE b.state = ANY(%s) AND (%s::text IS NULL OR b.batch_no = %s)"
        " ORDER BY b.created_at, b.batch_no",
        (list(QUEUE_STATES), batch_no, batch_no),
    ).fetchall()
    return [
        QueuedBatch(
            str(r[0]),
            str(r[1]),
            str(r[2]),
            r[3],
            int(r[4]),
            Decimal(r[5]),
            r[6],
            r[7],
            r[8],
            r[9],
            float(r[10] or 0),
        )
        for r in rows
    ]


def sheet_rows(conn: Connection, batch_no: str) -> list[SheetRow]:
    """One row per item of the batch, in the order it is sent."""
    rows = conn.execute(
        "SELECT i.position, i.refund_id, i.trade_no, r.order_id, i.amount, r.reason,"
        " i.reason_sent, r.state FROM batch_items i JOIN refunds r USING (refund_id)"
        " WHERE i.batch_no = %s ORDER BY i.position",
        (batch_no,),
    ).fetchall()
    return [SheetRow(*r) for r in rows]


def lock_expired_unapproved(conn: Connection, today: date, limit: int = 100) -> list[str]:
    """Batches still awaiting approval whose Beijing day is before `today`, locked."""
    rows = conn.execute(
        "SELECT batch_no FROM batches WHERE state = 'awaiting_approval' AND batch_day < %s"
        " ORDER BY batch_no LIMIT %s FOR UPDATE SKIP LOCKED",
        (today, limit),
    ).fetchall()
    return [str(r[0]) for r in rows]


def queue_gauges(conn: Connection) -> list[tuple[str, str, int, float]]:
    """(partner, state, batches, age of the oldest in seconds) of the approval queue."""
    rows = conn.execute(
        "SELECT partner, state, count(*), extract(epoch FROM clock_timestamp() - min("
        " CASE WHEN state = 'approved' THEN coalesce(approved_at, created_at)"
        " ELSE created_at END))"
        " FROM batches WHERE state = ANY(%s) GROUP BY partner, state",
        (list(QUEUE_STATES),),
    ).fetchall()
    return [(str(p), str(s), int(c), float(a or 0)) for p, s, c, a in rows]
