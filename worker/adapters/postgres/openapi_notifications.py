"""Statements on the stored OpenAPI notifications (`openapi_notifications`, migration 0008).

Storing one is `worker.adapters.postgres.openapi.store_openapi_notification`; these
read one back locked, set what came of applying it, find those left unapplied, and
list a refund's calls and notifications for `refund-worker status`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from worker.adapters.postgres.archive import ARCHIVE_SUFFIX
from worker.adapters.postgres.pool import Connection

__all__ = [
    "StoredOpenApiNotification",
    "lock_openapi_notification",
    "openapi_calls_of",
    "openapi_notifications_of",
    "out_request_no_owner",
    "set_openapi_notification_outcome",
    "unapplied_openapi_notifications",
]


@dataclass(frozen=True, slots=True)
class StoredOpenApiNotification:
    notify_id: str
    partner: str
    form: dict[str, str]
    received_at: datetime
    outcome: str


def lock_openapi_notification(conn: Connection, notify_id: str) -> StoredOpenApiNotification | None:
    """The stored notification `notify_id`, locked for this transaction; None if not stored."""
    row = conn.execute(
        "SELECT notify_id, partner, form, received_at, outcome FROM openapi_notifications"
        " WHERE notify_id = %s FOR UPDATE",
        (notify_id,),
    ).fetchone()
    if row is None:
        return None
    form = {str(k): str(v) for k, v in dict(row[2]).items()}
    return StoredOpenApiNotification(str(row[0]), str(row[1]), form, row[3], str(row[4]))


def set_openapi_notification_outcome(
    conn: Connection,
    notify_id: str,
    outcome: str,
    detail: str | None,
    *,
    refund_id: str | None = None,
    partner: str | None = None,
) -> None:
    """What came of applying it, and the refund (and its merchant) it was matched to."""
    conn.execute(
        "UPDATE openapi_notifications SET outcome = %s, detail = %s,"
        " refund_id = coalesce(%s, refund_id), partner = coalesce(%s, partner)"
        " WHERE notify_id = %s",
        (outcome, None if detail is None else detail[:500], refund_id, partner, notify_id),
    )


def unapplied_openapi_notifications(
    conn: Connection, *, outcomes: Sequence[str], older_than: float, limit: int
) -> list[str]:
    """Notify ids stored with one of `outcomes` more than `older_than` seconds ago."""
    rows = conn.execute(
        "SELECT notify_id FROM openapi_notifications WHERE outcome = ANY(%s)"
        " AND stored_at < clock_timestamp() - make_interval(secs => %s)"
        " ORDER BY stored_at LIMIT %s",
        (list(outcomes), older_than, limit),
    ).fetchall()
    return [str(r[0]) for r in rows]


def out_request_no_owner(conn: Connection, out_request_no: str) -> str | None:
    """The partner id of the refund sent under `out_request_no` (whoever's), or None."""
    row = conn.execute(
        "SELECT partner FROM refunds WHERE out_request_no = %s", (out_request_no,)
    ).fetchone()
    return None if row is None else str(row[0])


def _rows(conn: Connection, sql: str, *params: object) -> list[dict[str, Any]]:
    cur = conn.execute(sql, params)
    names = [c.name for c in cur.description or ()]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def openapi_calls_of(
    conn: Connection, refund_id: str, *, archived: bool = False
) -> list[dict[str, Any]]:
    """A refund's OpenAPI calls, oldest first (without the raw answers); `archived`: of a
    refund in the archive tables (migration 0009)."""
    suffix = ARCHIVE_SUFFIX if archived else ""
    return _rows(
        conn,
        "SELECT attempt, kind, method, started_at, ended_at, outcome, verdict, code, action,"
        f" detail FROM openapi_calls{suffix} WHERE refund_id = %s ORDER BY attempt",
        refund_id,
    )


def openapi_notifications_of(
    conn: Connection, refund_id: str, *, archived: bool = False
) -> list[dict[str, Any]]:
    """The notifications matched to a refund (or naming its out_request_no), oldest first;
    `archived`: of a refund in the archive tables, whose matched notifications moved
    with it (unmatched ones naming its out_request_no stay in the hot table)."""
    suffix = ARCHIVE_SUFFIX if archived else ""
    columns = "notify_id, notify_type, out_request_no, outcome, detail, received_at, stored_at"
    return _rows(
        conn,
        f"SELECT {columns} FROM ("
        f" SELECT {columns} FROM openapi_notifications{suffix} WHERE refund_id = %s"
        f" UNION SELECT {columns} FROM openapi_notifications WHERE out_request_no = ("
        f"   SELECT out_request_no FROM refunds{suffix} WHERE refund_id = %s)"
        ") AS n ORDER BY stored_at",
        refund_id,
        refund_id,
    )
