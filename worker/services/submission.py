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
from dataclasses import dataclass, field
from datetime import datetime, timedelta
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
    DATE_REBATCH_DELAY_SECONDS,
    Action,
    Attempt,
    Decision,
    Outcome,
    decide,
    decide_before_send,
    decide_unsendable,
    retry_delay,
)
from worker.domain.states import SUBMITTABLE_BATCHES, BatchState, RefundState
from worker.mapi import BEIJING, RefundItem, SyncResponse, build_refund_request
from worker.observability.metrics import SUBMIT_OUTCOMES
from worker.services.outcomes import record_completions
from worker.services.packing import REDRIVE_AFTER_SECONDS, new_batch

log = structlog.get_logger("worker.submit")

Clock = Callable[[], datetime]

SUBMITTABLE = SUBMITTABLE_BATCHES

# A claim over the merchant's in-flight limit is due again this much later.
THROTTLE_DELAY_SECONDS = 1.0

# The operator flag of a batch whose merchant the deployment no longer serves.
MERCHANT_NOT_SERVED = "merchant_not_served"


class Submitter(Protocol):
    def submit(self, params: dict[str, str]) -> SyncResponse: ...


@dataclass(slots=True)
class SubmitResult:
    status: str
    follow_ups: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _Claim:
    params: dict[str, str]
    attempts: int
    maybe_sent: bool
    items: list[ledger.BatchItem]
    merchant: MerchantProfile


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
) -> _Claim | SubmitResult:
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
    return _Claim(params, attempts, maybe_sent, items, merchant)


def _settle(
    conn: Connection,
    batch_no: str,
    claim: _Claim,
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
    if batch is None or batch.state != BatchState.SUBMITTING or batch.attempts != claim.attempts:
        # A notification (or another attempt) settled the batch while we were sending.
        log_.info("batch.outcome_superseded", state=None if batch is None else batch.state)
        return SubmitResult(batch.state if batch else "missing")

    SUBMIT_OUTCOMES.labels(claim.merchant.partner, decision.action.value).inc()
    ledger.note_attempt(conn, batch_no)
    if decision.operator_flag:
        ledger.note_flagged(conn, batch_no)
    step = _STEPS[decision.action]
    return step(_Settling(conn, batch_no, claim, attempt, decision, now, log_))


@dataclass(slots=True)
class _Settling:
    """Everything one settle step needs."""

    conn: Connection
    batch_no: str
    claim: _Claim
    attempt: Attempt
    decision: Decision
    now: datetime
    log: structlog.typing.FilteringBoundLogger

    def flag(self) -> dict[str, object]:
        flag = self.decision.operator_flag
        return {"operator_flag": flag} if flag else {}


def _accepted(s: _Settling) -> SubmitResult:
    ledger.update_batch(
        s.conn,
        s.batch_no,
        state=BatchState.ACCEPTED,
        maybe_sent=True,
        accepted_at=s.now,
        next_attempt_at=None,
        last_code=s.decision.code,
    )
    ledger.mark_submitted(s.conn, s.batch_no)
    s.log.info("batch.submitted", items=len(s.claim.items))
    return SubmitResult("accepted")


def _retry_same(s: _Settling) -> SubmitResult:
    delay = retry_delay(s.claim.attempts)
    state = BatchState.UNKNOWN if s.decision.maybe_sent else BatchState.RETRY
    ledger.update_batch(
        s.conn,
        s.batch_no,
        state=state,
        maybe_sent=s.decision.maybe_sent,
        last_code=s.decision.code,
        last_error=(s.attempt.error or s.decision.reason)[:500],
    )
    ledger.schedule_attempt(s.conn, s.batch_no, delay)
    s.log.warning("batch.retry_scheduled", delay_seconds=delay, outcome=s.attempt.outcome.value)
    return SubmitResult(state)


def _wait(s: _Settling) -> None:
    """Keep the batch as maybe-sent, with no next attempt: something else must settle it."""
    ledger.update_batch(
        s.conn,
        s.batch_no,
        state=BatchState.UNKNOWN,
        maybe_sent=True,
        next_attempt_at=None,
        last_code=s.decision.code,
        last_error=s.decision.reason,
        **s.flag(),
    )


def _wait_notify(s: _Settling) -> SubmitResult:
    _wait(s)
    s.log.error("batch.awaiting_notification")
    return SubmitResult("awaiting_notification")


def _verify_duplicate(s: _Settling) -> SubmitResult:
    _wait(s)
    s.log.error("batch.duplicate_unverified")
    return SubmitResult("awaiting_query")


def _hold(s: _Settling) -> SubmitResult:
    ledger.update_batch(
        s.conn,
        s.batch_no,
        state=BatchState.HELD,
        maybe_sent=s.decision.maybe_sent,
        next_attempt_at=None,
        last_code=s.decision.code,
        last_error=s.decision.reason,
        **s.flag(),
    )
    if s.decision.action is Action.HALT:
        ledger.set_submission_halt(
            s.conn, s.claim.merchant.partner, f"{s.decision.code} on batch {s.batch_no}"
        )
        s.log.critical("submission.halted")
    else:
        s.log.error("batch.held")
    return SubmitResult("held")


def _refused(s: _Settling) -> None:
    """The gateway proved it did not take this batch: its items may go out again."""
    if s.decision.maybe_sent:  # Decision cannot be built so; never release on a doubt
        raise AssertionError(f"{s.decision.action.value} of a batch that may have been sent")
    ledger.update_batch(
        s.conn,
        s.batch_no,
        state=BatchState.REFUSED,
        next_attempt_at=None,
        last_code=s.decision.code,
        last_error=s.decision.reason,
        **s.flag(),
    )


def _fail_item(s: _Settling) -> SubmitResult:
    _refused(s)
    code = s.decision.code or "UNKNOWN_ERROR"
    outcomes = [(i.refund_id, RefundState.FAILED, code) for i in s.claim.items]
    record_completions(s.conn, ledger.finish_refunds(s.conn, s.batch_no, outcomes, source="submit"))
    s.log.warning("batch.refused")
    return SubmitResult("refused")


def _split(s: _Settling) -> SubmitResult:
    _refused(s)
    ledger.return_to_pending(s.conn, s.batch_no)
    items = s.claim.items
    half = (len(items) + 1) // 2
    due = ledger.db_now(s.conn) + timedelta(seconds=REDRIVE_AFTER_SECONDS)
    parts = (items[:half], items[half:])
    partner = s.claim.merchant.partner
    follow_ups = [new_batch(s.conn, s.now, part, due, partner) for part in parts if part]
    s.log.warning("batch.split", into=follow_ups)
    return SubmitResult("refused", follow_ups)


def _redate(s: _Settling) -> SubmitResult:
    """Refused for its date: keep the items for the delay, then the claim renumbers it."""
    ledger.update_batch(
        s.conn,
        s.batch_no,
        state=BatchState.RETRY,
        maybe_sent=False,
        last_code=s.decision.code,
        last_error=s.decision.reason,
    )
    ledger.schedule_attempt(s.conn, s.batch_no, DATE_REBATCH_DELAY_SECONDS)
    if not s.decision.counts_toward_refund_limit:
        ledger.undo_batch_attempt(s.conn, s.batch_no)
    s.log.warning("batch.refused_for_date", delay_seconds=DATE_REBATCH_DELAY_SECONDS)
    return SubmitResult("retry")


def _rebatch(s: _Settling) -> SubmitResult:
    _refused(s)
    ledger.return_to_pending(s.conn, s.batch_no)
    s.log.warning("batch.rebatched", refunds=len(s.claim.items))
    return SubmitResult("refused")


_STEPS: dict[Action, Callable[[_Settling], SubmitResult]] = {
    Action.ACCEPTED: _accepted,
    Action.RETRY_SAME: _retry_same,
    Action.WAIT_NOTIFY: _wait_notify,
    Action.VERIFY_DUPLICATE: _verify_duplicate,
    Action.HALT: _hold,
    Action.HOLD: _hold,
    Action.SPLIT: _split,
    Action.FAIL_ITEM: _fail_item,
    Action.REBATCH: _rebatch,
    Action.REDATE: _redate,
}
