"""`refund-worker status`: what the ledger knows about a refund, a batch, or overall."""

from __future__ import annotations

import argparse
import json
from typing import Any

from worker.adapters.postgres import reconcile as ledger_reconcile
from worker.adapters.postgres.pool import Database
from worker.domain.errors import DatabaseUnavailable
from worker.entrypoints.roles._common import boot


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("what", choices=("refund", "batch", "summary"), help="what to show")
    parser.add_argument("id", nargs="?", help="refund_id or batch_no")


def _rows(db: Database, sql: str, *params: object) -> list[dict[str, Any]]:
    with db.transaction() as conn:
        cur = conn.execute(sql, params)
        names = [c.name for c in cur.description or ()]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def collect(db: Database, what: str, ident: str | None) -> dict[str, Any]:
    if what == "refund":
        refund = _rows(
            db,
            "SELECT refund_id, trade_no, amount, state, code, batch_no, batch_attempts,"
            " result_source, received_at, completed_at FROM refunds WHERE refund_id = %s",
            ident,
        )
        batches = _rows(
            db,
            "SELECT b.batch_no, b.state, b.attempts, b.last_code, b.operator_flag"
            " FROM batch_items i JOIN batches b USING (batch_no) WHERE i.refund_id = %s"
            " ORDER BY b.created_at",
            ident,
        )
        with db.transaction() as conn:
            dback = ledger_reconcile.refund_dback_results(conn, str(ident))
        return {
            "refund": refund[0] if refund else None,
            "batches": batches,
            "bank_card_returns": dback,
        }
    if what == "batch":
        batch = _rows(db, "SELECT * FROM batches WHERE batch_no = %s", ident)
        items = _rows(
            db,
            "SELECT i.refund_id, i.trade_no, i.amount, r.state, r.code FROM batch_items i"
            " JOIN refunds r USING (refund_id) WHERE i.batch_no = %s ORDER BY i.position",
            ident,
        )
        notes = _rows(
            db,
            "SELECT notify_id, outcome, detail, received_at FROM notifications WHERE batch_no = %s",
            ident,
        )
        with db.transaction() as conn:
            history = ledger_reconcile.batch_history(conn, str(ident))
        return {
            "batch": batch[0] if batch else None,
            "items": items,
            "notifications": notes,
            "queries": history["queries"],
            "operator_decisions": history["decisions"],
        }
    return {
        "refunds": _rows(db, "SELECT state, count(*) FROM refunds GROUP BY state ORDER BY state"),
        "batches": _rows(db, "SELECT state, count(*) FROM batches GROUP BY state ORDER BY state"),
        "flagged_batches": _rows(
            db,
            "SELECT batch_no, state, operator_flag, flagged_at FROM batches"
            " WHERE operator_flag IS NOT NULL ORDER BY flagged_at",
        ),
        "outbox": _rows(db, "SELECT count(*) FROM outbox"),
        "notifications_unapplied": _rows(
            db,
            "SELECT outcome, count(*), min(stored_at) AS oldest FROM notifications"
            " WHERE outcome IN ('pending', 'apply_failed', 'unknown_batch') GROUP BY outcome",
        ),
        "halt": _rows(db, "SELECT value, set_at FROM control WHERE name = 'submission_halted'"),
    }


def run(args: argparse.Namespace) -> int:
    settings = boot("status")
    if args.what != "summary" and not args.id:
        print(f"refund-worker status {args.what}: an id is required")
        return 2
    db = Database(settings.database_url, max_size=1)
    try:
        result = collect(db, args.what, args.id)
    except DatabaseUnavailable as exc:
        print(f"refund-worker status: {exc}")
        return 1
    finally:
        db.close()
    print(json.dumps(result, indent=2, default=str, ensure_ascii=False))
    missing = args.what != "summary" and result.get(args.what) is None
    return 1 if missing else 0
