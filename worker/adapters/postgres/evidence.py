"""What reconciliation learnt and what operators decided: `batch_queries`,
`trade_gateway_refunds`, `operator_decisions`, and the listings built on them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from worker.adapters.postgres.batches import OPEN_BATCH_STATES
from worker.adapters.postgres.pool import Connection
from worker.adapters.postgres.records import QueryRecord
from worker.domain.states import CLOSED_BATCH_FLAGS


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
           AND (NOT %(flagged)s OR (b.operator_flag IS NOT NULL
                AND (b.state = ANY(%(open)s) OR b.operator_flag = ANY(%(closed_flags)s))))
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
            "closed_flags": sorted(CLOSED_BATCH_FLAGS),
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
