"""Statements on the archive tables (migration 0009): final refunds out of the hot tables.

A refund moves with the rows that name it (`batch_items`, `openapi_calls`,
`openapi_notifications`), all in the caller's transaction: either all of them are in
the archive or none is. Which refunds may move is decided here once
(`archive_candidates`): final, completed before the cutoff, and in no batch that could
still change (`CLOSED_BATCHES`, no operator flag). Readers that must see the whole
history read both: intake's duplicate check and a trade's tally
(`worker/adapters/postgres/refunds.py`), `status refund ID` and `status batch`
(`worker/adapters/postgres/status.py`).
"""

from __future__ import annotations

from datetime import datetime

from worker.adapters.postgres.pool import Connection
from worker.domain.states import CLOSED_BATCHES, FINAL_REFUNDS

# A hot table's archive is the table of its name with this suffix.
ARCHIVE_SUFFIX = "_archive"
# The tables whose rows name a refund, moved before it (the archive's foreign keys name
# `refunds_archive`).
_CHILDREN = ("batch_items", "openapi_calls", "openapi_notifications")


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
    for hot in _CHILDREN:
        conn.execute(
            f"INSERT INTO {hot}{ARCHIVE_SUFFIX} SELECT * FROM {hot} WHERE refund_id = ANY(%s)", ids
        )
        conn.execute(f"DELETE FROM {hot} WHERE refund_id = ANY(%s)", ids)
    moved = conn.execute("DELETE FROM refunds WHERE refund_id = ANY(%s)", ids).rowcount
    return int(moved)
