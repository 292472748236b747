"""Statements on `notifications` (the inbox) and `dback_results`."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from worker.adapters.postgres.pool import Connection

# --- notifications -------------------------------------------------------------


def store_notification(
    conn: Connection,
    *,
    notify_id: str,
    kind: str,
    batch_no: str | None,
    form: Mapping[str, str],
    received_at: datetime,
    outcome: str,
    detail: str | None = None,
    partner: str | None = None,
) -> bool:
    """Insert into the inbox; False when this notify_id was stored before. `partner` is
    the merchant whose key authenticated it."""
    row = conn.execute(
        "INSERT INTO notifications"
        " (notify_id, kind, batch_no, form, received_at, outcome, detail, partner)"
        " VALUES (%s, %s, %s, %s::jsonb, %s, %s, %s, %s) ON CONFLICT (notify_id) DO NOTHING"
        " RETURNING notify_id",
        (notify_id, kind, batch_no, json.dumps(dict(form)), received_at, outcome, detail, partner),
    ).fetchone()
    return row is not None


def set_notification_outcome(
    conn: Connection, notify_id: str, outcome: str, detail: str | None
) -> None:
    conn.execute(
        "UPDATE notifications SET outcome = %s, detail = %s WHERE notify_id = %s",
        (outcome, detail, notify_id),
    )


def batch_refund_ids(conn: Connection, batch_no: str) -> dict[str, str]:
    """trade_no -> refund_id for the items of a batch."""
    rows = conn.execute(
        "SELECT trade_no, refund_id FROM batch_items WHERE batch_no = %s", (batch_no,)
    ).fetchall()
    return {str(r[0]): str(r[1]) for r in rows}


# --- stored notifications ----------------------------------------------------------


def lock_notification(
    conn: Connection, notify_id: str
) -> tuple[str, dict[str, str], datetime, str, str | None] | None:
    """(kind, form, received_at, outcome, partner) of a stored notification, row locked."""
    row = conn.execute(
        "SELECT kind, form, received_at, outcome, partner FROM notifications"
        " WHERE notify_id = %s FOR UPDATE",
        (notify_id,),
    ).fetchone()
    if row is None:
        return None
    return str(row[0]), dict(row[1]), row[2], str(row[3]), row[4]


def unapplied_notifications(
    conn: Connection, *, outcomes: Sequence[str], older_than: float, limit: int
) -> list[str]:
    rows = conn.execute(
        "SELECT notify_id FROM notifications WHERE outcome = ANY(%s)"
        " AND stored_at <= clock_timestamp() - make_interval(secs => %s)"
        " ORDER BY stored_at LIMIT %s",
        (list(outcomes), older_than, limit),
    ).fetchall()
    return [str(r[0]) for r in rows]


def store_dback(
    conn: Connection,
    *,
    notify_id: str,
    refund_id: str | None,
    trade_no: str | None,
    batch_no: str | None,
    card_last4: str | None,
    bank_name: str | None,
    status: str | None,
    received_at: datetime,
) -> None:
    conn.execute(
        "INSERT INTO dback_results (notify_id, refund_id, trade_no, batch_no, card_last4,"
        " bank_name, status, received_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (notify_id) DO NOTHING",
        (notify_id, refund_id, trade_no, batch_no, card_last4, bank_name, status, received_at),
    )


def refund_for_trade_in_batch(
    conn: Connection, batch_no: str | None, trade_no: str | None
) -> str | None:
    """The refund of `trade_no` sent in `batch_no` (or its latest refund when no batch is named)."""
    if trade_no is None:
        return None
    row = conn.execute(
        "SELECT refund_id FROM batch_items WHERE trade_no = %s"
        " AND (%s::text IS NULL OR batch_no = %s) ORDER BY batch_no DESC LIMIT 1",
        (trade_no, batch_no, batch_no),
    ).fetchone()
    return None if row is None else str(row[0])


def refund_dback_results(conn: Connection, refund_id: str) -> list[dict[str, Any]]:
    cur = conn.execute(
        "SELECT notify_id, batch_no, card_last4, bank_name, status, received_at"
        " FROM dback_results WHERE refund_id = %s ORDER BY received_at",
        (refund_id,),
    )
    names = [c.name for c in cur.description or ()]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def notify_ids_with_outcome(conn: Connection, outcome: str, limit: int) -> list[str]:
    """Stored notifications with `outcome`, oldest first (for `replay notifications`)."""
    rows = conn.execute(
        "SELECT notify_id FROM notifications WHERE outcome = %s ORDER BY received_at LIMIT %s",
        (outcome, limit),
    ).fetchall()
    return [str(r[0]) for r in rows]
