"""Applying Alipay's verified OpenAPI notifications (docs/openapi.md).

The notify receiver stores each notification whose signature verified
(`receive_openapi_notification`, keyed by `notify_id`, outcome `pending`) before it
answers `success`, and enqueues it; the notification job applies it
(`process_openapi_notification`), and the scheduler's sweep applies any left pending
(`sweep_unapplied_openapi`). Applying is safe to run twice: a notification already
applied is not applied again, and a refund moves only forward.

A coupon refund notification (`notify_type=fund_stdtrustee_refund.success`) is matched
to our refund by its `out_request_no`; it must name the same red envelope (`auth_no`)
and amount (`worker.domain.policy.openapi.coupon_notification_mismatch`). A match goes
through `decide_coupon_notification` and `apply_decision`, the same code path as a
synchronous answer: one `refund.completed`, whichever of the answer, the query or the
notification comes first.

Every other verified notification is kept with its outcome and changes nothing: other
notification types, refunds not made through this worker (Alipay's own refund of an
expired envelope goes to the payment's notify_url), an `out_request_no` we do not know,
or one that does not match (logged at error). A notification is applied only to a
refund of a merchant whose app key verifies it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import structlog

from worker.adapters.postgres import openapi as store
from worker.adapters.postgres import openapi_notifications as notes
from worker.adapters.postgres.pool import Connection, Database
from worker.domain.errors import DatabaseUnavailable, NotifyFormatError
from worker.domain.merchants import Merchants
from worker.domain.policy.openapi import (
    FINAL,
    coupon_notification_mismatch,
    decide_coupon_notification,
)
from worker.observability.metrics import OPENAPI_NOTIFICATIONS
from worker.openapi import COUPON_NOTIFY_TYPE, parse_coupon_notification, verify_notification
from worker.services.openapi_settle import apply_decision
from worker.services.openapi_submission import CHANNELS

__all__ = [
    "APPLIED",
    "PENDING",
    "UNAPPLIED",
    "apply_stored_openapi",
    "process_openapi_notification",
    "receive_openapi_notification",
    "sweep_unapplied_openapi",
]

log = structlog.get_logger("worker.openapi_notify")

PENDING = "pending"
APPLY_FAILED = "apply_failed"
APPLIED = "applied"
ALREADY_FINAL = "already_final"
NOT_COUPON = "not_coupon_refund"
MALFORMED = "malformed"
UNKNOWN_REFUND = "unknown_refund"
MISMATCH = "mismatch"
WRONG_MERCHANT = "wrong_merchant"
UNAPPLIED = (PENDING, APPLY_FAILED)


def receive_openapi_notification(
    db: Database, form: Mapping[str, str], partner: str, received_at: datetime
) -> bool:
    """Store a verified notification as `pending`; False when it was stored before."""
    with db.transaction() as conn:
        return _store(conn, form, partner, received_at)


def _store(conn: Connection, form: Mapping[str, str], partner: str, at: datetime) -> bool:
    return store.store_openapi_notification(
        conn,
        notify_id=form["notify_id"],
        partner=partner,
        notify_type=(form.get("notify_type") or "")[:100],
        out_request_no=(form.get("out_request_no") or None),
        refund_id=None,
        form=form,
        received_at=at,
        outcome=PENDING,
    )


def process_openapi_notification(
    db: Database,
    merchants: Merchants,
    form: Mapping[str, str],
    received_at: datetime,
    partner: str,
) -> str:
    """The notification job: store (if the receiver has not), then apply; the outcome."""
    notify_id = form["notify_id"]
    receive_openapi_notification(db, form, partner, received_at)
    outcome = apply_stored_openapi(db, merchants, notify_id, only_unapplied=True)
    if outcome is None:
        log.info("openapi_notify.duplicate", notify_id=notify_id, merchant=partner)
        outcome = "duplicate"
    OPENAPI_NOTIFICATIONS.labels(merchant=partner, outcome=outcome).inc()
    return outcome


def apply_stored_openapi(
    db: Database, merchants: Merchants, notify_id: str, *, only_unapplied: bool = False
) -> str | None:
    """Apply a stored notification (again); None when not stored or already applied.

    An error while applying (anything but the database going away) leaves it stored as
    `apply_failed` for the sweep or an operator; it is never dropped.
    """
    try:
        with db.transaction() as conn:
            stored = notes.lock_openapi_notification(conn, notify_id)
            if stored is None:
                return None
            if only_unapplied and stored.outcome not in UNAPPLIED:
                return None
            outcome, detail, refund_id, owner = _apply(conn, merchants, stored)
            notes.set_openapi_notification_outcome(
                conn, notify_id, outcome, detail, refund_id=refund_id, partner=owner
            )
            return outcome
    except DatabaseUnavailable:
        raise
    except Exception as exc:
        log.exception("openapi_notify.apply_failed", notify_id=notify_id, error=type(exc).__name__)
        with db.transaction() as conn:
            notes.set_openapi_notification_outcome(
                conn, notify_id, APPLY_FAILED, f"{type(exc).__name__}: {str(exc)[:300]}"
            )
        return APPLY_FAILED


def sweep_unapplied_openapi(
    db: Database, merchants: Merchants, *, older_than: float = 30.0, limit: int = 100
) -> list[str]:
    """Apply notifications stored but left `pending` (the job was lost or is late)."""
    with db.transaction() as conn:
        ids = notes.unapplied_openapi_notifications(
            conn, outcomes=(PENDING,), older_than=older_than, limit=limit
        )
    for notify_id in ids:
        outcome = apply_stored_openapi(db, merchants, notify_id, only_unapplied=True)
        log.warning("openapi_notify.applied_late", notify_id=notify_id, outcome=outcome)
    return ids


_Applied = tuple[str, str | None, str | None, str | None]  # outcome, detail, refund, merchant


def _apply(
    conn: Connection, merchants: Merchants, stored: notes.StoredOpenApiNotification
) -> _Applied:
    form = stored.form
    bound = log.bind(
        notify_id=stored.notify_id,
        merchant=stored.partner,
        out_request_no=(form.get("out_request_no") or "")[:64] or None,
    )
    notify_type = form.get("notify_type") or ""
    if notify_type != COUPON_NOTIFY_TYPE:
        bound.warning("openapi_notify.not_coupon_refund", notify_type=notify_type[:64])
        return NOT_COUPON, f"notify_type {notify_type[:60]!r}", None, None
    try:
        notification = parse_coupon_notification(form)
    except NotifyFormatError as exc:
        bound.error("openapi_notify.malformed", problem=str(exc)[:200])
        return MALFORMED, str(exc), None, None
    owner = _owner(conn, merchants, stored, notification.out_request_no)
    if owner is None:
        bound.error("openapi_notify.unknown_refund")
        return UNKNOWN_REFUND, "no refund of ours has this out_request_no", None, None
    if isinstance(owner, tuple):
        bound.critical("openapi_notify.wrong_merchant", refund_of=owner[0])
        return WRONG_MERCHANT, f"refund of merchant {owner[0]}, not verified by its key", None, None
    refund = store.refund_by_out_request_no(conn, notification.out_request_no, owner)
    assert refund is not None
    bound = bound.bind(refund_id=refund.refund_id, merchant=owner)
    problem = coupon_notification_mismatch(
        notification,
        channel=CHANNELS[refund.channel],
        auth_no=refund.auth_no,
        amount=refund.amount,
    )
    if problem is not None:
        bound.error("openapi_notify.mismatch", problem=problem)
        return MISMATCH, problem, refund.refund_id, owner
    if refund.final:
        emit = bound.info if refund.state == "succeeded" else bound.critical
        emit("openapi_notify.for_final_refund", state=refund.state, status=notification.status)
        return ALREADY_FINAL, f"refund already {refund.state}", refund.refund_id, owner
    decision = decide_coupon_notification(notification)
    if decision.action not in FINAL and refund.claimed_at is not None:
        # A call is in flight: its own settlement decides what comes next.
        bound.info("openapi_notify.call_in_flight", status=notification.status)
        return APPLIED, f"{notification.status}: a call was in flight", refund.refund_id, owner
    apply_decision(conn, refund, decision, step="notify", reply=None, source="notify")
    bound.info("openapi_notify.applied", action=decision.action.value, status=notification.status)
    return APPLIED, f"{decision.action.value}: {decision.reason}", refund.refund_id, owner


def _owner(
    conn: Connection,
    merchants: Merchants,
    stored: notes.StoredOpenApiNotification,
    out_request_no: str,
) -> str | tuple[str] | None:
    """The partner whose refund this is (None: no such refund; (partner,): a merchant
    whose key does not verify the notification)."""
    partner = notes.out_request_no_owner(conn, out_request_no)
    if partner is None or partner == stored.partner:
        return partner
    merchant = merchants.get(partner)
    app = merchant.openapi_app if merchant is not None else None
    if app is not None and verify_notification(stored.form, app.alipay_public_key_pem):
        return partner  # apps that share Alipay's key: the refund's own merchant signed too
    return (partner,)
