"""Applying Alipay's verified notifications to the ledger.

The receiver only enqueues notifications whose signature verified and that the
gateway's `notify_verify` confirmed. Here each is stored in the inbox (keyed by
`notify_id`, so a resend or a replay changes nothing), parsed, and its items move
refunds forward -- only forward -- with their `refund.completed` outbox rows in
the same transaction. Whatever does not add up is logged and kept.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import datetime

import structlog

from worker import ledger
from worker.db import Connection, Database
from worker.errors import NotifyFormatError
from worker.mapi import parse_notify
from worker.metrics import NOTIFICATIONS
from worker.services.outcomes import record_completions

log = structlog.get_logger("worker.notify")

BATCH_REFUND = "batch_refund"
DBACK = "dback"


def _surrogate_id(kind: str, form: Mapping[str, str]) -> str:
    canonical = json.dumps(dict(form), sort_keys=True, ensure_ascii=False)
    return f"{kind}:sha256:{hashlib.sha256(canonical.encode()).hexdigest()}"


def process_notification(
    db: Database, kind: str, form: Mapping[str, str], received_at: datetime
) -> str:
    """Store and apply one notification in one transaction; returns its outcome."""
    with db.transaction() as conn:
        outcome = apply_notification(conn, kind, form, received_at)
    NOTIFICATIONS.labels(outcome).inc()
    return outcome


def replay_stored(db: Database, notify_id: str) -> str | None:
    """Apply a stored notification again (e.g. one that arrived before its batch was known)."""
    with db.transaction() as conn:
        row = conn.execute(
            "DELETE FROM notifications WHERE notify_id = %s RETURNING kind, form, received_at",
            (notify_id,),
        ).fetchone()
        if row is None:
            return None
        return apply_notification(conn, row[0], row[1], row[2])


def apply_notification(
    conn: Connection, kind: str, form: Mapping[str, str], received_at: datetime
) -> str:
    """Store and apply one notification inside the caller's transaction."""
    notify_id = form.get("notify_id") or _surrogate_id(kind, form)
    log_ = log.bind(notify_id=notify_id, batch_no=form.get("batch_no"))
    if kind == DBACK:
        batch_no = form.get("batch_no") or form.get("refund_batch_no")
        fresh = ledger.store_notification(
            conn,
            notify_id=notify_id,
            kind=DBACK,
            batch_no=batch_no,
            form=form,
            received_at=received_at,
            outcome="stored",
        )
        log_.info(
            "notify.dback" if fresh else "notify.duplicate",
            trade_no=form.get("trade_no"),
            status=form.get("status"),
        )
        return "stored" if fresh else "duplicate"
    if kind != BATCH_REFUND:
        raise ValueError(f"unknown notification kind {kind!r}")

    try:
        note = parse_notify(form)
    except NotifyFormatError as exc:
        fresh = ledger.store_notification(
            conn,
            notify_id=notify_id,
            kind=kind,
            batch_no=form.get("batch_no"),
            form=form,
            received_at=received_at,
            outcome="malformed",
            detail=str(exc)[:1000],
        )
        log_.error("notify.malformed", error=str(exc)[:300], stored=fresh)
        return "malformed" if fresh else "duplicate"

    if not ledger.store_notification(
        conn,
        notify_id=notify_id,
        kind=kind,
        batch_no=note.batch_no,
        form=form,
        received_at=received_at,
        outcome="received",
    ):
        log_.info("notify.duplicate")
        return "duplicate"

    batch = ledger.lock_batch(conn, note.batch_no)
    if batch is None:
        ledger.set_notification_outcome(conn, notify_id, "unknown_batch", None)
        log_.warning("notify.unknown_batch")
        return "unknown_batch"
    if batch.state in ("refused", "abandoned"):
        # The worker concluded the gateway never took this batch and released its
        # items. A result for it means that conclusion was wrong: an operator must look.
        ledger.set_notification_outcome(conn, notify_id, "for_released_batch", batch.state)
        log_.critical("notify.for_released_batch", state=batch.state)
        return "for_released_batch"

    by_trade = ledger.batch_refund_ids(conn, note.batch_no)
    outcomes: list[tuple[str, str, str]] = []
    strangers: list[str] = []
    for item in note.items:
        refund_id = by_trade.get(item.trade_no)
        if refund_id is None:
            strangers.append(item.trade_no)
            continue
        outcomes.append((refund_id, "succeeded" if item.succeeded else "failed", item.code))
    completed = ledger.apply_results(conn, note.batch_no, outcomes)
    record_completions(conn, completed)

    reported = {i.trade_no for i in note.items}
    missing = sorted(set(by_trade) - reported)
    successes = sum(1 for i in note.items if i.succeeded)
    problems: list[str] = []
    if strangers:
        problems.append(f"{len(strangers)} items not in the batch")
        log_.error("notify.items_not_in_batch", trade_nos=strangers[:20])
    if missing:
        problems.append(f"{len(missing)} items missing from the result")
        log_.error("notify.items_missing", trade_nos=missing[:20], count=len(missing))
    if successes != note.success_num:
        problems.append(f"success_num {note.success_num} but {successes} SUCCESS items")
        log_.warning("notify.success_num_mismatch", success_num=note.success_num, counted=successes)
    late = len(outcomes) - len(completed)
    if late:
        log_.info("notify.late_items", count=late)

    if missing:
        ledger.update_batch(
            conn,
            note.batch_no,
            state="accepted",
            next_attempt_at=None,
            maybe_sent=True,
            operator_flag="items_missing_from_notification",
        )
    else:
        ledger.update_batch(
            conn,
            note.batch_no,
            state="completed",
            next_attempt_at=None,
            maybe_sent=True,
            completed_at=received_at,
        )
    outcome = "applied" if not problems else "applied_with_problems"
    ledger.set_notification_outcome(conn, notify_id, outcome, "; ".join(problems) or None)
    log_.info(
        "notify.applied",
        items=len(note.items),
        completed=len(completed),
        success_num=note.success_num,
    )
    return outcome
