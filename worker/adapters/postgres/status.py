"""What `refund-worker status` and the ledger gauges read: plain rows as dictionaries."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from worker.adapters.postgres.approvals import queue_gauges
from worker.adapters.postgres.archive import ARCHIVE_SUFFIX
from worker.adapters.postgres.evidence import batch_history
from worker.adapters.postgres.notifications import refund_dback_results
from worker.adapters.postgres.openapi_notifications import (
    openapi_calls_of,
    openapi_notifications_of,
)
from worker.adapters.postgres.pool import Connection
from worker.domain.states import CLOSED_BATCH_FLAGS


def _rows(conn: Connection, sql: str, *params: object) -> list[dict[str, Any]]:
    cur = conn.execute(sql, params)
    names = [c.name for c in cur.description or ()]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


_REFUND_COLUMNS = (
    "refund_id, channel, trade_no, out_trade_no, auth_no, out_request_no, amount,"
    " state, code, batch_no, batch_attempts, openapi_attempts, maybe_sent, next_step,"
    " next_attempt_at, held_reason, operation_id, gmt_refund_pay, result_source,"
    " received_at, completed_at"
)


def refund_status(conn: Connection, refund_id: str) -> dict[str, Any]:
    """A refund, the batches it went through, and its bank-card return results; for an
    OpenAPI refund (channel `trade` or `coupon`) its calls and notifications instead.
    A refund moved to the archive (migration 0009) is read from the archive tables, the
    same way, and marked `archived`."""
    refund = _rows(conn, f"SELECT {_REFUND_COLUMNS} FROM refunds WHERE refund_id = %s", refund_id)
    archived = not refund
    if archived:
        refund = _rows(
            conn,
            f"SELECT {_REFUND_COLUMNS}, archived_at FROM refunds{ARCHIVE_SUFFIX}"
            " WHERE refund_id = %s",
            refund_id,
        )
        if not refund:
            return {
                "refund": None,
                "batches": [],
                "bank_card_returns": refund_dback_results(conn, refund_id),
            }
    found: dict[str, Any] = {"refund": refund[0], **({"archived": True} if archived else {})}
    if refund[0]["channel"] != "batch":
        return found | {
            "openapi_calls": openapi_calls_of(conn, refund_id, archived=archived),
            "openapi_notifications": openapi_notifications_of(conn, refund_id, archived=archived),
        }
    suffix = ARCHIVE_SUFFIX if archived else ""
    batches = _rows(
        conn,
        "SELECT b.batch_no, b.state, b.attempts, b.last_code, b.operator_flag"
        f" FROM batch_items{suffix} i JOIN batches b USING (batch_no) WHERE i.refund_id = %s"
        " ORDER BY b.created_at",
        refund_id,
    )
    return found | {
        "batches": batches,
        "bank_card_returns": refund_dback_results(conn, refund_id),
    }


def batch_status(conn: Connection, batch_no: str) -> dict[str, Any]:
    """A batch, its items (archived ones too), notifications, query answers and operator
    decisions."""
    batch = _rows(conn, "SELECT * FROM batches WHERE batch_no = %s", batch_no)
    items = _rows(
        conn,
        "SELECT refund_id, trade_no, amount, state, code FROM ("
        " SELECT i.refund_id, i.trade_no, i.amount, r.state, r.code, i.position"
        " FROM batch_items i JOIN refunds r USING (refund_id) WHERE i.batch_no = %s"
        " UNION ALL SELECT i.refund_id, i.trade_no, i.amount, r.state, r.code, i.position"
        " FROM batch_items_archive i JOIN refunds_archive r USING (refund_id)"
        " WHERE i.batch_no = %s) AS items ORDER BY position",
        batch_no,
        batch_no,
    )
    notes = _rows(
        conn,
        "SELECT notify_id, outcome, detail, received_at FROM notifications WHERE batch_no = %s",
        batch_no,
    )
    history = batch_history(conn, batch_no)
    return {
        "batch": batch[0] if batch else None,
        "items": items,
        "notifications": notes,
        "queries": history["queries"],
        "operator_decisions": history["decisions"],
    }


def summary(conn: Connection) -> dict[str, Any]:
    """Counts by state, flagged batches, the outbox, unapplied notifications, the halt."""
    return {
        "refunds": _rows(
            conn,
            "SELECT partner AS merchant, state, count(*) FROM refunds GROUP BY partner, state"
            " ORDER BY partner, state",
        ),
        "batches": _rows(
            conn,
            "SELECT partner AS merchant, state, count(*) FROM batches GROUP BY partner, state"
            " ORDER BY partner, state",
        ),
        "flagged_batches": _rows(
            conn,
            "SELECT batch_no, partner AS merchant, state, operator_flag, flagged_at FROM batches"
            " WHERE operator_flag IS NOT NULL ORDER BY flagged_at",
        ),
        "outbox": _rows(conn, "SELECT count(*) FROM outbox"),
        "notifications_unapplied": _rows(
            conn,
            "SELECT outcome, count(*), min(stored_at) AS oldest FROM notifications"
            " WHERE outcome IN ('pending', 'apply_failed', 'unknown_batch') GROUP BY outcome",
        ),
        "halt": _rows(
            conn,
            "SELECT substr(name, length('submission_halted:') + 1) AS merchant, value, set_at"
            " FROM control WHERE starts_with(name, 'submission_halted:') ORDER BY name",
        ),
    }


@dataclass(slots=True)
class LedgerGauges:
    """The ledger's figures the metrics read at scrape time."""

    # merchant (partner id), state, count, age of the oldest
    waiting: list[tuple[str, str, int, float]] = field(default_factory=list)
    flagged: list[tuple[str, str, int]] = field(default_factory=list)  # merchant, flag, open
    outbox: int = 0
    unapplied: list[tuple[str, int, float]] = field(default_factory=list)  # outcome, count, age
    halted: set[str] = field(default_factory=set)  # merchants halted after a configuration error
    merchants: set[str] = field(default_factory=set)  # merchants with open work or a halt
    # merchant, awaiting_approval | approved, batches, age of the oldest (password service)
    approvals: list[tuple[str, str, int, float]] = field(default_factory=list)


def ledger_gauges(conn: Connection) -> LedgerGauges:
    gauges = LedgerGauges()
    for partner, state, count, age in conn.execute(
        "SELECT partner, state, count(*),"
        " extract(epoch FROM clock_timestamp() - min(received_at))"
        " FROM refunds WHERE state IN ('pending', 'batched', 'submitted') GROUP BY partner, state"
    ).fetchall():
        gauges.waiting.append((str(partner), str(state), int(count), float(age or 0)))
    for partner, flag, count in conn.execute(
        "SELECT partner, operator_flag, count(*) FROM batches WHERE operator_flag IS NOT NULL"
        " AND (state NOT IN ('completed', 'refused', 'abandoned', 'released')"
        "      OR operator_flag = ANY(%s))"
        " GROUP BY partner, operator_flag",
        (sorted(CLOSED_BATCH_FLAGS),),
    ).fetchall():
        gauges.flagged.append((str(partner), str(flag), int(count)))
    row = conn.execute("SELECT count(*) FROM outbox").fetchone()
    gauges.outbox = int(row[0]) if row else 0
    for outcome, count, age in conn.execute(
        "SELECT outcome, count(*), extract(epoch FROM clock_timestamp() - min(stored_at))"
        " FROM notifications WHERE outcome IN ('pending', 'apply_failed', 'unknown_batch')"
        " GROUP BY outcome"
    ).fetchall():
        gauges.unapplied.append((str(outcome), int(count), float(age or 0)))
    gauges.halted = {
        str(r[0])
        for r in conn.execute(
            "SELECT substr(name, length('submission_halted:') + 1) FROM control"
            " WHERE starts_with(name, 'submission_halted:')"
        ).fetchall()
    }
    gauges.approvals = queue_gauges(conn)
    gauges.merchants = {w[0] for w in gauges.waiting} | gauges.halted
    return gauges
