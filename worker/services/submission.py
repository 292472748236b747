"""Submitting one batch to the gateway and carrying out what `worker.domain.policy` decides.

Three short steps, each safe to crash in:
1. claim: lock the batch row, apply the Beijing-day rule, build and sign the
   request, record `submitting` with the attempt counted -- committed *before*
   anything is sent, so a crash mid-flight is later seen as "maybe sent";
2. send: one HTTP POST with explicit timeouts (no transaction open);
3. settle: lock the row again and apply the decision, unless a notification has
   settled the batch in the meantime.

Everything is per merchant (the batch's partner id): its keys and charset sign the
request, its halt after a configuration error holds only its batches, and at most its
`max_in_flight` batches are being sent at once (a claim over the limit is pushed back
by `THROTTLE_DELAY_SECONDS` and re-driven by the sweeper), so one merchant's broken key
or slow answers never hold back another's refunds.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Protocol

import structlog

from worker.adapters.postgres import ledger
from worker.adapters.postgres.pool import Connection, Database
from worker.domain.errors import (
    ConfigError,
    GatewayNotSent,
    GatewayOutcomeUnknown,
    ProtocolError,
    SigningError,
)
from worker.domain.merchants import MerchantProfile, Merchants
from worker.domain.policy import (
    Action,
    Attempt,
    Decision,
    Outcome,
    decide,
    decide_before_send,
    decide_unsendable,
)
from worker.domain.states import SUBMITTABLE_BATCHES, BatchState
from worker.mapi import BEIJING, RefundItem, SyncResponse, build_refund_request
from worker.observability.metrics import SUBMIT_OUTCOMES
from worker.services.submission_steps import STEPS, Claim, Settling, SubmitResult

log = structlog.get_logger("worker.submit")

Clock = Callable[[], datetime]

SUBMITTABLE = SUBMITTABLE_BATCHES

# A claim over the merchant's in-flight limit is due again this much later.
THROTTLE_DELAY_SECONDS = 1.0

# The operator flag of a batch whose merchant the deployment no longer serves.
MERCHANT_NOT_SERVED = "merchant_not_served"


class Submitter(Protocol):
    def submit(self, params: dict[str, str]) -> SyncResponse: ...


def submit_batch(
    db: Database,
    gateways: Callable[[MerchantProfile], Submitter],
    merchants: Merchants,
    batch_no: str,
    *,
    clock: Clock,
    lease_seconds: float,
) -> SubmitResult:
    """Submit `batch_no` once with its merchant's client (`gateways(merchant)`); returns
    what happened and any new batches to enqueue."""
    log_ = log.bind(batch_no=batch_no)
    with db.transaction() as conn:
        claim = _claim(conn, merchants, batch_no, clock(), lease_seconds)
    if isinstance(claim, SubmitResult):
        if claim.status not in ("accepted", "completed"):
            log_.info("batch.skipped", status=claim.status)
        return claim

    log_ = log_.bind(merchant=claim.merchant.partner)
    log_.info("batch.submitting", attempt=claim.attempts, items=len(claim.items))
    unsendable: Decision | None = None
    try:
        attempt = Attempt(Outcome.ANSWERED, gateways(claim.merchant).submit(claim.params))
    except GatewayNotSent as exc:
        attempt = Attempt(Outcome.NOT_SENT, error=str(exc))
    except GatewayOutcomeUnknown as exc:
        attempt = Attempt(Outcome.UNKNOWN, error=str(exc))
    except (ProtocolError, ConfigError, SigningError) as exc:
        # Refused by the client before anything was sent (e.g. unencodable text).
        attempt = Attempt(Outcome.NOT_SENT, error=str(exc))
        unsendable = decide_unsendable(str(exc), maybe_sent_before=claim.maybe_sent)

    decision = unsendable or decide(
        attempt,
        maybe_sent_before=claim.maybe_sent,
        attempts=claim.attempts,
        item_count=len(claim.items),
        refund_batches=claim.items[0].batch_attempts if claim.items else 0,
    )
    with db.transaction() as conn:
        return _settle(conn, batch_no, claim, attempt, decision, clock())


def _claim(
    conn: Connection, merchants: Merchants, batch_no: str, now: datetime, lease_seconds: float
) -> Claim | SubmitResult:
    batch = ledger.lock_batch(conn, batch_no)
    if batch is None:
        log.error("batch.missing", batch_no=batch_no)
        return SubmitResult("missing")
    if batch.state not in SUBMITTABLE:
        return SubmitResult(batch.state)

    in_flight = batch.state == BatchState.SUBMITTING
    if in_flight:
        if ledger.in_flight_within(conn, batch_no, lease_seconds):
            return SubmitResult("busy")
        log.warning("batch.in_flight_lost", batch_no=batch_no, attempts=batch.attempts)
    maybe_sent = batch.maybe_sent or in_flight

    merchant = merchants.get(batch.partner)
    if merchant is None:
        # Nothing here can sign for it: keep it, same batch_no, for an operator.
        ledger.update_batch(
            conn,
            batch_no,
            state=BatchState.HELD,
            maybe_sent=maybe_sent,
            next_attempt_at=None,
            operator_flag=MERCHANT_NOT_SERVED,
            last_error=f"merchant {batch.partner} is not in this deployment's merchants",
        )
        ledger.note_flagged(conn, batch_no)
        log.error(
            "batch.held", batch_no=batch_no, merchant=batch.partner, reason=MERCHANT_NOT_SERVED
        )
        return SubmitResult("held")

    if merchant.needs_approval and batch.service != "pwd" and not maybe_sent:
        # The merchant moved to the password service before this batch was ever sent.
        ledger.update_batch(
            conn, batch_no, state=BatchState.AWAITING_APPROVAL, service="pwd", next_attempt_at=None
        )
        log.info("batch.awaiting_approval", batch_no=batch_no, merchant=merchant.partner)
        return SubmitResult("awaiting_approval")

    halt = ledger.submission_halt(conn, merchant.partner)
    if halt is not None:
        ledger.update_batch(conn, batch_no, state=BatchState.HELD, maybe_sent=maybe_sent)
        log.warning("batch.held", batch_no=batch_no, merchant=merchant.partner, halt=halt)
        return SubmitResult("held")

    if ledger.merchant_in_flight(conn, merchant.partner, lease_seconds) >= merchant.max_in_flight:
        ledger.schedule_attempt(conn, batch_no, THROTTLE_DELAY_SECONDS)
        return SubmitResult("throttled")

    before = decide_before_send(
        batch_day=batch.batch_day,
        today=now.astimezone(BEIJING).date(),
        maybe_sent=maybe_sent,
        last_code=ledger.last_code(conn, batch_no) if batch.state == BatchState.RETRY else None,
    )
    if before is not None:
        if before.action is Action.REBATCH:
            moved = ledger.return_to_pending(conn, batch_no)
            ledger.update_batch(
                conn, batch_no, state=BatchState.ABANDONED, last_error=before.reason
            )
            log.warning(
                "batch.abandoned", batch_no=batch_no, reason=before.reason, refunds=len(moved)
            )
            return SubmitResult("abandoned")
        ledger.update_batch(
            conn,
            batch_no,
            state=BatchState.UNKNOWN,
            maybe_sent=before.maybe_sent,
            next_attempt_at=None,
            last_error=before.reason,
        )
        log.warning("batch.awaiting_notification", batch_no=batch_no, reason=before.reason)
        return SubmitResult("awaiting_notification")

    items = ledger.batch_items(conn, batch_no)
    try:
        params = build_refund_request(
            merchant.gateway,
            batch_no=batch_no,
            items=[RefundItem(i.trade_no, i.amount, i.reason_sent) for i in items],
            now=now,
        )
    except (ProtocolError, ConfigError, SigningError) as exc:
        ledger.update_batch(
            conn,
            batch_no,
            state=BatchState.HELD,
            maybe_sent=maybe_sent,
            next_attempt_at=None,
            last_error=str(exc)[:500],
            operator_flag="request_invalid",
        )
        log.error(
            "batch.held",
            batch_no=batch_no,
            merchant=merchant.partner,
            reason="request cannot be built",
            error=str(exc),
        )
        return SubmitResult("held")
    attempts = batch.attempts + 1
    ledger.update_batch(
        conn,
        batch_no,
        state=BatchState.SUBMITTING,
        attempts=attempts,
        maybe_sent=maybe_sent,
        next_attempt_at=ledger.db_now(conn),
    )
    # Reconciliation counts its waits from the last attempt: noted when it starts and
    # again when it ends (the later, safer of the two).
    ledger.note_attempt(conn, batch_no)
    return Claim(params, attempts, maybe_sent, items, merchant)


def _settle(
    conn: Connection,
    batch_no: str,
    claim: Claim,
    attempt: Attempt,
    decision: Decision,
    now: datetime,
) -> SubmitResult:
    batch = ledger.lock_batch(conn, batch_no)
    log_ = log.bind(
        batch_no=batch_no,
        merchant=claim.merchant.partner,
        attempt=claim.attempts,
        action=decision.action.value,
        code=decision.code,
        reason=decision.reason,
        maybe_sent=decision.maybe_sent,
    )
    current = (
        batch is not None
        and batch.state == BatchState.SUBMITTING
        and batch.attempts == claim.attempts
    )
    ledger.record_attempt(
        conn,
        batch_no,
        claim.attempts,
        outcome=attempt.outcome.value,
        action=decision.action.value if current else "superseded",
        code=decision.code or attempt.code,
        error=attempt.error or (attempt.response.detail if attempt.response else None),
    )
    if not current:
        # A notification (or another attempt) settled the batch while we were sending.
        log_.info("batch.outcome_superseded", state=None if batch is None else batch.state)
        return SubmitResult(batch.state if batch else "missing")

    SUBMIT_OUTCOMES.labels(claim.merchant.partner, decision.action.value).inc()
    ledger.note_attempt(conn, batch_no)
    if decision.operator_flag:
        ledger.note_flagged(conn, batch_no)
    step = STEPS[decision.action]
    return step(Settling(conn, batch_no, claim, attempt, decision, now, log_))
