"""The ledger's statements for converging on the truth (PostgreSQL).

Reported results (from a notification or a query) applied by trade, the
reconciler's schedule and evidence (`batch_queries`), releases, operator
decisions, refunds the gateway reports for a trade under batch numbers this
worker never used, stored notifications waiting to be applied, and bank-card
return results. Every statement here is set-based or by primary key.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from worker.adapters.postgres.pool import Connection

# Batch states in which the gateway may hold the batch and its result is not known yet.
RECONCILABLE = ("accepted", "unknown")
# Refund states of a refund that is in a batch and not final.
IN_BATCH = ("batched", "submitted")


@dataclass(frozen=True, slots=True)
class BatchMember:
    refund_id: str
    trade_no: str
    amount: Decimal
    state: str


@dataclass(frozen=True, slots=True)
class BatchView:
    """What reconciliation needs to know of a batch."""

    batch_no: str
    batch_day: date
    state: str
    attempts: int
    maybe_sent: bool
    operator_flag: str | None
    last_attempt_at: datetime | None
    created_at: datetime
    queries: int


@dataclass(frozen=True, slots=True)
class QueryRecord:
    asked_at: datetime
    answer: str  # found | not_found | refused | no_answer
    trade_nos: tuple[str, ...]  # the trades the answer showed under this batch_no
    complete: bool = True  # every entry of the answer was read


_BATCH_VIEW = (
    "batch_no, batch_day, state, attempts, maybe_sent, operator_flag,"
    " last_attempt_at, created_at, queries"
)


def lock_batch_view(conn: Connection, batch_no: str) -> BatchView | None:
    row = conn.execute(
        f"SELECT {_BATCH_VIEW} FROM batches WHERE batch_no = %s FOR UPDATE", (batch_no,)
    ).fetchone()
    return None if row is None else BatchView(*row)


def batch_members(conn: Connection, batch_no: str) -> dict[str, BatchMember]:
    """trade_no -> the refund sent for it in `batch_no` (amount as sent, current state)."""
    rows = conn.execute(
        "SELECT i.refund_id, i.trade_no, i.amount, r.state"
        " FROM batch_items i JOIN refunds r USING (refund_id) WHERE i.batch_no = %s",
        (batch_no,),
    ).fetchall()
    return {str(r[1]): BatchMember(str(r[0]), str(r[1]), r[2], str(r[3])) for r in rows}


def open_in_batch(conn: Connection, batch_no: str) -> list[str]:
    """Refunds still waiting in `batch_no` (batched or submitted to it)."""
    rows = conn.execute(
        "SELECT refund_id FROM refunds WHERE batch_no = %s AND (state IN ('batched', 'submitted'))"
        " IS TRUE ORDER BY refund_id",
        (batch_no,),
        prepare=False,
    ).fetchall()
    return [str(r[0]) for r in rows]


def set_result_source(conn: Connection, refund_ids: Sequence[str], source: str) -> None:
    if refund_ids:
        conn.execute(
            "UPDATE refunds SET result_source = %s WHERE refund_id = ANY(%s)",
            (source, list(refund_ids)),
        )


def update_batch(conn: Connection, batch_no: str, **fields: object) -> None:
    """Set reconciliation fields of a batch (names checked against a fixed list)."""
    allowed = {
        "state",
        "maybe_sent",
        "next_attempt_at",
        "next_query_at",
        "last_code",
        "last_error",
        "operator_flag",
        "completed_at",
        "accepted_at",
    }
    unknown = set(fields) - allowed
    if unknown:
        raise ValueError(f"unknown batch fields: {sorted(unknown)}")
    assignments = "".join(f"{name} = %s, " for name in fields)
    conn.execute(
        f"UPDATE batches SET {assignments}updated_at = clock_timestamp() WHERE batch_no = %s",
        (*fields.values(), batch_no),
    )


def flag_batch(conn: Connection, batch_no: str, flag: str) -> None:
    """Raise an operator flag on a batch (the first flag raised stays until it is cleared)."""
    conn.execute(
        "UPDATE batches SET operator_flag = coalesce(operator_flag, %s),"
        " flagged_at = coalesce(flagged_at, clock_timestamp()) WHERE batch_no = %s",
        (flag, batch_no),
    )


def schedule_query(conn: Connection, batch_no: str, delay_seconds: float) -> None:
    conn.execute(
        "UPDATE batches SET next_query_at = clock_timestamp() + make_interval(secs => %s)"
        " WHERE batch_no = %s",
        (delay_seconds, batch_no),
    )


def claim_due_queries(
    conn: Connection, *, reconcile_after: float, lease: float, limit: int
) -> list[str]:
    """Batches whose query is due, claimed for `lease` seconds (several schedulers are safe).

    Due: the gateway may hold the batch (accepted, or outcome unknown and not about to be
    retried), and either its next query time has come, or it has none yet and its last
    attempt is `reconcile_after` seconds old.
    """
    rows = conn.execute(
        """
        UPDATE batches SET next_query_at = clock_timestamp() + make_interval(secs => %(lease)s)
         WHERE batch_no = ANY(ARRAY(
               SELECT batch_no FROM batches
                WHERE state IN ('accepted', 'unknown')
                  AND (state = 'accepted' OR maybe_sent)
                  AND CASE WHEN next_query_at IS NOT NULL THEN next_query_at <= clock_timestamp()
                           ELSE coalesce(last_attempt_at, accepted_at, updated_at)
                                <= clock_timestamp() - make_interval(secs => %(after)s) END
                ORDER BY coalesce(next_query_at, created_at)
                LIMIT %(limit)s FOR UPDATE SKIP LOCKED))
        RETURNING batch_no
        """,
        {"lease": lease, "after": reconcile_after, "limit": limit},
    ).fetchall()
    return sorted(str(r[0]) for r in rows)


def record_query(
    conn: Connection,
    *,
    batch_no: str,
    trade_no: str | None,
    purpose: str,
    answer: str,
    error_code: str | None,
    items: Sequence[Mapping[str, Any]],
    detail: str | None,
    asked_at: datetime,
    complete: bool = True,
) -> None:
    """Store one answer; `asked_at` is the service's clock (the release rule compares it)."""
    conn.execute(
        "INSERT INTO batch_queries"
        " (batch_no, trade_no, purpose, answer, error_code, items, detail, asked_at, complete)"
        " VALUES (%s, %s, %s, %s, %s, %s::jsonb, %s, %s, %s)",
        (
            batch_no,
            trade_no,
            purpose,
            answer,
            error_code,
            json.dumps(list(items), ensure_ascii=False),
            detail,
            asked_at,
            complete,
        ),
    )
    if trade_no is None:
        conn.execute(
            "UPDATE batches SET queries = queries + 1, last_query_at = %s,"
            " last_query_answer = %s WHERE batch_no = %s",
            (asked_at, answer if error_code is None else f"{answer}:{error_code}", batch_no),
        )


def queries_since(conn: Connection, batch_no: str, since: datetime | None) -> list[QueryRecord]:
    """Answers to queries by this batch_no asked after `since`, oldest first."""
    rows = conn.execute(
        "SELECT asked_at, answer, items, complete FROM batch_queries"
        " WHERE batch_no = %s AND trade_no IS NULL AND (%s::timestamptz IS NULL OR asked_at > %s)"
        " ORDER BY asked_at, id",
        (batch_no, since, since),
    ).fetchall()
    return [
        QueryRecord(
            r[0], str(r[1]), tuple(str(i.get("trade_no")) for i in (r[2] or [])), bool(r[3])
        )
        for r in rows
    ]


def release_refunds(conn: Connection, batch_no: str, refund_ids: Sequence[str] | None) -> list[str]:
    """Send refunds of `batch_no` back to pending (all open ones when `refund_ids` is None)."""
    rows = conn.execute(
        "UPDATE refunds SET state = 'pending', batch_no = NULL, updated_at = clock_timestamp()"
        " WHERE batch_no = %s AND (state IN ('batched', 'submitted')) IS TRUE"
        " AND (%s::text[] IS NULL OR refund_id = ANY(%s::text[])) RETURNING refund_id",
        (batch_no, None if refund_ids is None else list(refund_ids), refund_ids),
        prepare=False,
    ).fetchall()
    return sorted(str(r[0]) for r in rows)


def record_gateway_refunds(conn: Connection, rows: Sequence[tuple[str, str, Decimal, str]]) -> int:
    """Remember (trade_no, batch_no, amount, code) the gateway reports under foreign batches."""
    if not rows:
        return 0
    payload = json.dumps(
        [[t, b, str(a), c] for t, b, a, c in rows], ensure_ascii=False, separators=(",", ":")
    )
    cur = conn.execute(
        "INSERT INTO trade_gateway_refunds (trade_no, batch_no, amount, code)"
        " SELECT r->>0, r->>1, (r->>2)::numeric, r->>3 FROM json_array_elements(%s::json) AS r"
        " ON CONFLICT (trade_no, batch_no) DO UPDATE SET code = EXCLUDED.code",
        (payload,),
    )
    return cur.rowcount


def our_batch_nos(conn: Connection, batch_nos: Sequence[str]) -> set[str]:
    rows = conn.execute(
        "SELECT batch_no FROM batches WHERE batch_no = ANY(%s)", (list(batch_nos),)
    ).fetchall()
    return {str(r[0]) for r in rows}


def record_decision(
    conn: Connection,
    *,
    batch_no: str,
    decision: str,
    operator: str,
    reason: str,
    forced: bool,
    query_answer: str | None,
    query_detail: str | None,
    refunds: int,
) -> None:
    conn.execute(
        "INSERT INTO operator_decisions (batch_no, decision, operator, reason, forced,"
        " query_answer, query_detail, refunds) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
        (batch_no, decision, operator, reason, forced, query_answer, query_detail, refunds),
    )


# --- stored notifications ----------------------------------------------------------


def lock_notification(
    conn: Connection, notify_id: str
) -> tuple[str, dict[str, str], datetime, str] | None:
    """(kind, form, received_at, outcome) of a stored notification, row locked."""
    row = conn.execute(
        "SELECT kind, form, received_at, outcome FROM notifications WHERE notify_id = %s"
        " FOR UPDATE",
        (notify_id,),
    ).fetchone()
    return None if row is None else (str(row[0]), dict(row[1]), row[2], str(row[3]))


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


# --- operators ------------------------------------------------------------------------

OPEN_BATCH_STATES = ("ready", "submitting", "retry", "unknown", "accepted", "held")


def list_batches(
    conn: Connection, *, waiting: bool, flagged: bool, overdue_seconds: float | None, limit: int
) -> list[dict[str, Any]]:
    """Batches with their age and their refunds by state, newest first, filtered."""
    cur = conn.execute(
        """
        SELECT b.batch_no, b.batch_day, b.state, b.attempts, b.maybe_sent, b.operator_flag,
               b.last_code, b.queries, b.last_query_answer, b.created_at,
               extract(epoch FROM clock_timestamp() - b.created_at)::float8 AS age_seconds,
               (SELECT coalesce(jsonb_object_agg(s.state, s.n), '{}'::jsonb)
                  FROM (SELECT r.state, count(*) AS n FROM batch_items i
                          JOIN refunds r USING (refund_id)
                         WHERE i.batch_no = b.batch_no GROUP BY r.state) AS s) AS refunds
          FROM batches b
         WHERE (NOT %(waiting)s OR b.state = ANY(%(open)s))
           AND (NOT %(flagged)s OR (b.operator_flag IS NOT NULL AND b.state = ANY(%(open)s)))
           AND (%(overdue)s::float8 IS NULL OR (b.state = ANY(%(open)s)
                AND b.created_at < clock_timestamp() - make_interval(secs => %(overdue)s)))
         ORDER BY b.created_at DESC
         LIMIT %(limit)s
        """,
        {
            "waiting": waiting,
            "flagged": flagged,
            "overdue": overdue_seconds,
            "open": list(OPEN_BATCH_STATES),
            "limit": limit,
        },
    )
    names = [c.name for c in cur.description or ()]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def batch_history(conn: Connection, batch_no: str) -> dict[str, list[dict[str, Any]]]:
    """The queries asked and the operator decisions taken about a batch, oldest first."""
    out: dict[str, list[dict[str, Any]]] = {}
    for key, sql in (
        (
            "queries",
            "SELECT asked_at, purpose, trade_no, answer, error_code, detail,"
            " jsonb_array_length(coalesce(items, '[]'::jsonb)) AS items"
            " FROM batch_queries WHERE batch_no = %s ORDER BY asked_at, id",
        ),
        (
            "decisions",
            "SELECT decided_at, decision, operator, reason, forced, query_answer, refunds"
            " FROM operator_decisions WHERE batch_no = %s ORDER BY decided_at, id",
        ),
    ):
        cur = conn.execute(sql, (batch_no,))
        names = [c.name for c in cur.description or ()]
        out[key] = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    return out


def refund_dback_results(conn: Connection, refund_id: str) -> list[dict[str, Any]]:
    cur = conn.execute(
        "SELECT notify_id, batch_no, card_last4, bank_name, status, received_at"
        " FROM dback_results WHERE refund_id = %s ORDER BY received_at",
        (refund_id,),
    )
    names = [c.name for c in cur.description or ()]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def mark_accepted(conn: Connection, batch_no: str) -> int:
    """An operator's word that the gateway holds the batch: its batched refunds are submitted."""
    cur = conn.execute(
        "UPDATE refunds SET state = 'submitted', updated_at = clock_timestamp()"
        " WHERE batch_no = %s AND (state = 'batched') IS TRUE",
        (batch_no,),
        prepare=False,
    )
    conn.execute(
        "UPDATE batches SET state = 'accepted', maybe_sent = true, next_attempt_at = NULL,"
        " next_query_at = clock_timestamp(), operator_flag = NULL,"
        " accepted_at = coalesce(accepted_at, clock_timestamp()), updated_at = clock_timestamp()"
        " WHERE batch_no = %s",
        (batch_no,),
    )
    return cur.rowcount
