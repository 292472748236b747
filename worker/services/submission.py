"""Submitting one batch to the gateway and carrying out what `worker.policy` decides.

Three short steps, each safe to crash in:
1. claim: lock the batch row, apply the Beijing-day rule, build and sign the
   request, record `submitting` with the attempt counted -- committed *before*
   anything is sent, so a crash mid-flight is later seen as "maybe sent";
2. send: one HTTP POST with explicit timeouts (no transaction open);
3. settle: lock the row again and apply the decision, unless a notification has
   settled the batch in the meantime.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

import structlog

from worker import ledger
from worker.db import Connection, Database
from worker.errors import (
    ConfigError,
    GatewayNotSent,
    GatewayOutcomeUnknown,
    ProtocolError,
    SigningError,
)
from worker.mapi import BEIJING, Merchant, RefundItem, SyncResponse, build_refund_request
from worker.metrics import SUBMIT_OUTCOMES
from worker.policy import (
    Action,
    Attempt,
    Decision,
    Outcome,
    decide,
    decide_before_send,
    retry_delay,
)
from worker.services.outcomes import record_completions
from worker.services.packing import REDRIVE_AFTER_SECONDS, db_now, new_batch

log = structlog.get_logger("worker.submit")

Clock = Callable[[], datetime]

SUBMITTABLE = ("ready", "retry", "unknown", "submitting")


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


def submit_batch(
    db: Database,
    gateway: Submitter,
    merchant: Merchant,
    batch_no: str,
    *,
    clock: Clock,
    lease_seconds: float,
) -> SubmitResult:
    """Submit `batch_no` once; returns what happened and any new batches to enqueue."""
    log_ = log.bind(batch_no=batch_no)
    with db.transaction() as conn:
        claim = _claim(conn, merchant, batch_no, clock(), lease_seconds)
    if isinstance(claim, SubmitResult):
        if claim.status not in ("accepted", "completed"):
            log_.info("batch.skipped", status=claim.status)
        return claim

    log_.info("batch.submitting", attempt=claim.attempts, items=len(claim.items))
    unsendable: Decision | None = None
    try:
        attempt = Attempt(Outcome.ANSWERED, gateway.submit(claim.params))
    except GatewayNotSent as exc:
        attempt = Attempt(Outcome.NOT_SENT, error=str(exc))
    except GatewayOutcomeUnknown as exc:
        attempt = Attempt(Outcome.UNKNOWN, error=str(exc))
    except (ProtocolError, ConfigError, SigningError) as exc:
        # Refused by the client before anything was sent (e.g. unencodable text).
        attempt = Attempt(Outcome.NOT_SENT, error=str(exc))
        unsendable = Decision(
            Action.HOLD, f"request cannot be sent: {exc}", None, "request_invalid"
        )

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
    conn: Connection, merchant: Merchant, batch_no: str, now: datetime, lease_seconds: float
) -> _Claim | SubmitResult:
    batch = ledger.lock_batch(conn, batch_no)
    if batch is None:
        log.error("batch.missing", batch_no=batch_no)
        return SubmitResult("missing")
    if batch.state not in SUBMITTABLE:
        return SubmitResult(batch.state)

    in_flight = batch.state == "submitting"
    if in_flight:
        row = conn.execute(
            "SELECT updated_at > clock_timestamp() - make_interval(secs => %s)"
            " FROM batches WHERE batch_no = %s",
            (lease_seconds, batch_no),
        ).fetchone()
        if row is not None and row[0]:
            return SubmitResult("busy")
        log.warning("batch.in_flight_lost", batch_no=batch_no, attempts=batch.attempts)
    maybe_sent = batch.maybe_sent or in_flight

    halt = ledger.submission_halt(conn)
    if halt is not None:
        ledger.update_batch(conn, batch_no, state="held", maybe_sent=maybe_sent)
        log.warning("batch.held", batch_no=batch_no, halt=halt)
        return SubmitResult("held")

    before = decide_before_send(
        batch_day=batch.batch_day, today=now.astimezone(BEIJING).date(), maybe_sent=maybe_sent
    )
    if before is not None:
        if before.action is Action.REBATCH:
            moved = ledger.return_to_pending(conn, batch_no)
            ledger.update_batch(conn, batch_no, state="abandoned", last_error=before.reason)
            log.warning(
                "batch.abandoned", batch_no=batch_no, reason=before.reason, refunds=len(moved)
            )
            return SubmitResult("abandoned")
        ledger.update_batch(
            conn,
            batch_no,
            state="unknown",
            maybe_sent=True,
            next_attempt_at=None,
            last_error=before.reason,
        )
        log.warning("batch.awaiting_notification", batch_no=batch_no, reason=before.reason)
        return SubmitResult("awaiting_notification")

    items = ledger.batch_items(conn, batch_no)
    try:
        params = build_refund_request(
            merchant,
            batch_no=batch_no,
            items=[RefundItem(i.trade_no, i.amount, i.reason_sent) for i in items],
            now=now,
        )
    except (ProtocolError, ConfigError, SigningError) as exc:
        ledger.update_batch(
            conn,
            batch_no,
            state="held",
            maybe_sent=maybe_sent,
            next_attempt_at=None,
            last_error=str(exc)[:500],
            operator_flag="request_invalid",
        )
        log.error("batch.held", batch_no=batch_no, reason="request cannot be built", error=str(exc))
        return SubmitResult("held")
    attempts = batch.attempts + 1
    ledger.update_batch(
        conn,
        batch_no,
        state="submitting",
        attempts=attempts,
        maybe_sent=maybe_sent,
        next_attempt_at=db_now(conn),
    )
    return _Claim(params, attempts, maybe_sent, items)


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
        attempt=claim.attempts,
        action=decision.action.value,
        code=decision.code,
        reason=decision.reason,
    )
    if batch is None or batch.state != "submitting" or batch.attempts != claim.attempts:
        # A notification (or another attempt) settled the batch while we were sending.
        log_.info("batch.outcome_superseded", state=None if batch is None else batch.state)
        return SubmitResult(batch.state if batch else "missing")

    maybe_sent = claim.maybe_sent or attempt.outcome is Outcome.UNKNOWN
    action = decision.action
    SUBMIT_OUTCOMES.labels(action.value).inc()
    flag = {"operator_flag": decision.operator_flag} if decision.operator_flag else {}
    if decision.operator_flag:
        conn.execute(
            "UPDATE batches SET flagged_at = clock_timestamp() WHERE batch_no = %s", (batch_no,)
        )

    if action is Action.ACCEPTED:
        ledger.update_batch(
            conn,
            batch_no,
            state="accepted",
            maybe_sent=True,
            accepted_at=now,
            next_attempt_at=None,
            last_code=decision.code,
        )
        ledger.mark_submitted(conn, batch_no)
        log_.info("batch.submitted", items=len(claim.items))
        return SubmitResult("accepted")

    if action is Action.RETRY_SAME:
        delay = retry_delay(claim.attempts)
        state = "unknown" if maybe_sent else "retry"
        ledger.update_batch(
            conn,
            batch_no,
            state=state,
            maybe_sent=maybe_sent,
            last_code=decision.code,
            last_error=(attempt.error or decision.reason)[:500],
        )
        conn.execute(
            "UPDATE batches SET next_attempt_at = clock_timestamp() + make_interval(secs => %s)"
            " WHERE batch_no = %s",
            (delay, batch_no),
        )
        log_.warning("batch.retry_scheduled", delay_seconds=delay, outcome=attempt.outcome.value)
        return SubmitResult(state)

    if action is Action.WAIT_NOTIFY:
        ledger.update_batch(
            conn,
            batch_no,
            state="unknown",
            maybe_sent=True,
            next_attempt_at=None,
            last_code=decision.code,
            last_error=decision.reason,
            **flag,
        )
        log_.error("batch.awaiting_notification")
        return SubmitResult("awaiting_notification")

    if action is Action.VERIFY_DUPLICATE:
        ledger.update_batch(
            conn,
            batch_no,
            state="unknown",
            maybe_sent=True,
            next_attempt_at=None,
            last_code=decision.code,
            last_error=decision.reason,
            **flag,
        )
        log_.error("batch.duplicate_unverified")
        return SubmitResult("awaiting_query")

    if action in (Action.HALT, Action.HOLD):
        ledger.update_batch(
            conn,
            batch_no,
            state="held",
            maybe_sent=maybe_sent,
            next_attempt_at=None,
            last_code=decision.code,
            last_error=decision.reason,
            **flag,
        )
        if action is Action.HALT:
            ledger.set_submission_halt(conn, f"{decision.code} on batch {batch_no}")
            log_.critical("submission.halted")
        else:
            log_.error("batch.held")
        return SubmitResult("held")

    # The gateway definitely did not take this batch: its items may go out again.
    ledger.update_batch(
        conn,
        batch_no,
        state="refused",
        next_attempt_at=None,
        last_code=decision.code,
        last_error=decision.reason,
        **flag,
    )
    if action is Action.FAIL_ITEM:
        outcomes = [(i.refund_id, "failed", decision.code or "UNKNOWN_ERROR") for i in claim.items]
        record_completions(conn, ledger.finish_refunds(conn, batch_no, outcomes))
        log_.warning("batch.refused")
        return SubmitResult("refused")

    ledger.detach_items(conn, batch_no)
    if action is Action.SPLIT:
        half = (len(claim.items) + 1) // 2
        due = db_now(conn) + timedelta(seconds=REDRIVE_AFTER_SECONDS)
        parts = [claim.items[:half], claim.items[half:]]
        follow_ups = [new_batch(conn, now, part, due) for part in parts if part]
        log_.warning("batch.split", into=follow_ups)
        return SubmitResult("refused", follow_ups)

    log_.warning("batch.rebatched", refunds=len(claim.items))
    return SubmitResult("refused")
