"""Statements on the archive tables (migration 0009): final refunds out of the hot tables.

A refund moves with the rows that name it (`batch_items`, `openapi_calls`,
`openapi_notifications`), all in the caller's transaction: either all of them are in
the archive or none is. Which refunds may move is decided here once
(`archive_candidates`): final, completed before the cutoff, and in no batch that could
still change (`CLOSED_BATCHES`, no operator flag). Readers that must see the whole
history (intake's duplicate check, a trade's tally, `status refund ID`) read both.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from worker.adapters.postgres.pool import Connection
from worker.domain.states import CLOSED_BATCHES, FINAL_REFUNDS

# (hot table, archive table), children before their refund: the order rows are copied
# and deleted in (the archive's foreign keys name `refunds_archive`).
_CHILDREN = (
    ("batch_items", "batch_items_archive"),
    ("openapi_calls", "openapi_calls_archive"),
    ("openapi_notifications", "openapi_notifications_archive"),
)


def archive_candidates(conn: Connection, cutoff: datetime, limit: int) -> list[str]:
    """Up to `limit` refunds that may move, oldest completion first, locked (SKIP LOCKED:
    a refund another transaction is changing is left for the next round)."""
    rows = conn.execute(
        "SELECT r.refund_id FROM refunds r"
        " WHERE r.completed_at IS NOT NULL AND r.completed_at < %(cutoff)s"
        " AND r.state = ANY(%(final)s)"
        " AND NOT EXISTS (SELECT 1 FROM batch_items i JOIN batches b USING (batch_no)"
        "   WHERE i.refund_id = r.refund_id"
        "   AND (b.state <> ALL(%(closed)s) OR b.operator_flag IS NOT NULL))"
        " ORDER BY r.completed_at LIMIT %(limit)s FOR UPDATE OF r SKIP LOCKED",
        {
            "cutoff": cutoff,
            "final": sorted(FINAL_REFUNDS),
            "closed": sorted(CLOSED_BATCHES),
            "limit": limit,
        },
    ).fetchall()
    return [str(r[0]) for r in rows]


def move_to_archive(conn: Connection, refund_ids: list[str]) -> int:
    """Copy the refunds and the rows naming them into the archive, then delete them from
    the hot tables; returns the number of refunds moved. Columns go by position: the
    archive tables have their hot table's columns in order, then `archived_at`."""
    if not refund_ids:
        return 0
    ids = (refund_ids,)
    conn.execute("INSERT INTO refunds_archive SELECT * FROM refunds WHERE refund_id = ANY(%s)", ids)
    for hot, archive in _CHILDREN:
        conn.execute(f"INSERT INTO {archive} SELECT * FROM {hot} WHERE refund_id = ANY(%s)", ids)
        conn.execute(f"DELETE FROM {hot} WHERE refund_id = ANY(%s)", ids)
    moved = conn.execute("DELETE FROM refunds WHERE refund_id = ANY(%s)", ids).rowcount
    return int(moved)


def archived_refund(conn: Connection, columns: str, refund_id: str) -> dict[str, Any] | None:
    """One archived refund's `columns` (a select list of `refunds`), or None."""
    cur = conn.execute(
        f"SELECT {columns}, archived_at FROM refunds_archive WHERE refund_id = %s", (refund_id,)
    )
    row = cur.fetchone()
    if row is None:
        return None
    names = [c.name for c in cur.description or ()]
    return dict(zip(names, row, strict=True))


def archived_batches_of(conn: Connection, refund_id: str) -> list[dict[str, Any]]:
    """The batches an archived refund went through, oldest first."""
    cur = conn.execute(
        "SELECT b.batch_no, b.state, b.attempts, b.last_code, b.operator_flag"
        " FROM batch_items_archive i JOIN batches b USING (batch_no) WHERE i.refund_id = %s"
        " ORDER BY b.created_at",
        (refund_id,),
    )
    names = [c.name for c in cur.description or ()]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
