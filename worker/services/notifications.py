"""Applying Alipay's verified notifications to the ledger.

The receiver only enqueues notifications whose signature verified and that the
gateway's `notify_verify` confirmed, and it has already answered `success`, so
Alipay will not send them again: a verified notification must never be lost.
Each is therefore first stored in the inbox (keyed by `notify_id`, so a resend
or a replay changes nothing) with outcome `pending`, in a transaction of its
own, and only then applied. If applying fails, the row stays (`pending` after a
crash, `apply_failed` after an error) and is applied again by the scheduler's
sweep or by `refund-worker replay notifications`; nothing expires.

Applying reads `result_details` as tolerantly as its grammar allows
(`worker.mapi.results`) and goes through `worker.services.results`, the same
code path as a query's answer. Whatever a notification does not settle is
left to reconciliation by query.

The receiver says which merchant's key authenticated the notification (its partner
id). A batch notification is applied only to a batch of that merchant: one that names
another merchant's batch proves nothing about it (a key of one merchant cannot speak
for another) and is kept as `wrong_merchant`, logged at critical level, never applied.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import datetime

import structlog

from worker.adapters.postgres import ledger
from worker.adapters.postgres.pool import Connection, Database
from worker.domain.errors import DatabaseUnavailable
from worker.domain.states import ENDED_BATCHES, BatchState
from worker.mapi.results import read_result_details
from worker.observability.metrics import NOTIFICATIONS
from worker.services.dback import apply_dback
from worker.services.results import Reported, apply_reported, settle_batch

log = structlog.get_logger("worker.notify")

BATCH_REFUND = "batch_refund"
DBACK = "dback"
PENDING = "pending"
APPLY_FAILED = "apply_failed"
UNKNOWN_BATCH = "unknown_batch"
WRONG_MERCHANT = "wrong_merchant"
# Outcomes of a stored notification that is still to be applied.
UNAPPLIED = (PENDING, APPLY_FAILED, UNKNOWN_BATCH)

# Seconds after which a reported item the notification did not settle is queried.
MISSING_ITEMS_QUERY_SECONDS = 60.0


def notify_id_of(kind: str, form: Mapping[str, str]) -> str:
    """The inbox key: `notify_id`, or a digest of the form when there is none (dback)."""
    notify_id = form.get("notify_id")
    if notify_id:
        return notify_id
    canonical = json.dumps(dict(form), sort_keys=True, ensure_ascii=False)
    return f"{kind}:sha256:{hashlib.sha256(canonical.encode()).hexdigest()}"


def process_notification(
    db: Database,
    kind: str,
    form: Mapping[str, str],
    received_at: datetime,
    partner: str | None = None,
) -> str:
    """Store a verified notification durably, then apply it; returns its outcome.

    `partner`: the merchant whose key authenticated it (None: a message queued before
    merchants were recorded, whose batch's merchant is then trusted)."""
    if kind not in (BATCH_REFUND, DBACK):
        raise ValueError(f"unknown notification kind {kind!r}")
    notify_id = notify_id_of(kind, form)
    batch_no = form.get("batch_no") or form.get("refund_batch_no")
    with db.transaction() as conn:
        fresh = ledger.store_notification(
            conn,
            notify_id=notify_id,
            kind=kind,
            batch_no=batch_no,
            form=form,
            received_at=received_at,
            outcome=PENDING,
            partner=partner,
        )
    outcome = apply_stored(db, notify_id, only_unapplied=True)
    if not fresh and outcome is None:
        log.info("notify.duplicate", notify_id=notify_id, batch_no=batch_no)
        outcome = "duplicate"
    NOTIFICATIONS.labels(partner or "unknown", outcome or "duplicate").inc()
    return outcome or "duplicate"


def apply_stored(db: Database, notify_id: str, *, only_unapplied: bool = False) -> str | None:
    """Apply a stored notification (again); None when it is not stored or already applied.

    An error while applying (anything but the database going away, which the
    caller retries) leaves the notification stored as `apply_failed`, logged and
    counted, for the sweep or an operator's replay; it is never dropped.
    """
    try:
        with db.transaction() as conn:
            row = ledger.lock_notification(conn, notify_id)
            if row is None:
                return None
            kind, form, received_at, outcome, partner = row
            if only_unapplied and outcome not in UNAPPLIED:
                return None
            new_outcome, detail = _apply(conn, notify_id, kind, form, received_at, partner)
            ledger.set_notification_outcome(conn, notify_id, new_outcome, detail)
            return new_outcome
    except DatabaseUnavailable:
        raise
    except Exception as exc:
        log.exception("notify.apply_failed", notify_id=notify_id, error=type(exc).__name__)
        with db.transaction() as conn:
            ledger.set_notification_outcome(
                conn, notify_id, APPLY_FAILED, f"{type(exc).__name__}: {str(exc)[:300]}"
            )
        return APPLY_FAILED


def replay_stored(db: Database, notify_id: str) -> str | None:
    """Operator replay: apply a stored notification again, whatever its outcome was."""
    return apply_stored(db, notify_id)


def sweep_unapplied(db: Database, *, older_than: float = 30.0, limit: int = 100) -> list[str]:
    """Apply notifications stored but left `pending` (e.g. the worker died in between)."""
    with db.transaction() as conn:
        ids = ledger.unapplied_notifications(
            conn, outcomes=(PENDING,), older_than=older_than, limit=limit
        )
    for notify_id in ids:
        outcome = apply_stored(db, notify_id, only_unapplied=True)
        log.warning("notify.applied_late", notify_id=notify_id, outcome=outcome)
    return ids


def _apply(
    conn: Connection,
    notify_id: str,
    kind: str,
    form: Mapping[str, str],
    received_at: datetime,
    partner: str | None,
) -> tuple[str, str | None]:
    if kind == DBACK:
        return apply_dback(conn, notify_id, form, received_at)
    batch_no = (form.get("batch_no") or "").strip()
    log_ = log.bind(notify_id=notify_id, batch_no=batch_no or None)
    if not batch_no:
        log_.error("notify.no_batch_no")
        return UNKNOWN_BATCH, "notification names no batch_no"
    batch = ledger.lock_batch(conn, batch_no)
    if batch is None:
        log_.warning("notify.unknown_batch")
        return UNKNOWN_BATCH, None
    log_ = log_.bind(merchant=batch.partner)
    if partner is not None and partner != batch.partner:
        log_.critical("notify.wrong_merchant", signed_for=partner)
        return WRONG_MERCHANT, f"authenticated for merchant {partner}, batch of {batch.partner}"
    if batch.state in ENDED_BATCHES:
        # The worker concluded the gateway never took this batch and released its
        # items. A result for it means that conclusion was wrong: an operator must look.
        ledger.flag_batch(conn, batch_no, "notification_for_released_batch")
        log_.critical("notify.for_released_batch", state=batch.state)
        return "for_released_batch", batch.state

    reading = read_result_details(form.get("result_details"))
    reported = [Reported(i.trade_no, i.code, i.amount, i.raw) for i in reading.items]
    applied = apply_reported(conn, batch_no, reported, source="notify")
    problems = applied.problems
    if reading.unread:
        problems.append(f"{len(reading.unread)} entries unreadable")
        log_.error(
            "notify.unreadable_entries",
            count=len(reading.unread),
            reasons=sorted({u.reason for u in reading.unread}),
        )
    success_num = (form.get("success_num") or "").strip()
    counted = sum(1 for i in reading.items if i.succeeded)
    if success_num != str(counted):
        log_.warning("notify.success_num_mismatch", success_num=success_num[:12], counted=counted)

    if settle_batch(conn, batch_no, applied.still_open, at=received_at) is BatchState.ACCEPTED:
        # Accepted for sure (Alipay wrote about it); the rest is for reconciliation.
        ledger.flag_batch(conn, batch_no, "items_missing_from_notification")
        ledger.schedule_query(conn, batch_no, MISSING_ITEMS_QUERY_SECONDS)
        log_.error("notify.items_missing", count=len(applied.still_open))
    log_.info(
        "notify.applied",
        items=len(reading.items),
        completed=len(applied.completed),
        open=len(applied.still_open),
    )
    outcome = "applied" if not problems else "applied_with_problems"
    return outcome, "; ".join(problems) or None
