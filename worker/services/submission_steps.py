"""What each submission decision does to the ledger, one step per `Action`.

`worker.services.submission` claims, sends, then calls the step of the decision
(`STEPS`) inside the settle transaction, with the batch row locked.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog

from worker.adapters.postgres import ledger
from worker.adapters.postgres.pool import Connection
from worker.domain.merchants import MerchantProfile
from worker.domain.policy import (
    DATE_REBATCH_DELAY_SECONDS,
    Action,
    Attempt,
    Decision,
    retry_delay,
)
from worker.domain.states import BatchState, RefundState
from worker.services.outcomes import record_completions
from worker.services.packing import REDRIVE_AFTER_SECONDS, new_batch

__all__ = ["STEPS", "Claim", "Settling", "SubmitResult"]


@dataclass(slots=True)
class SubmitResult:
    status: str
    follow_ups: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Claim:
    params: dict[str, str]
    attempts: int
    maybe_sent: bool
    items: list[ledger.BatchItem]
    merchant: MerchantProfile


@dataclass(slots=True)
class Settling:
    """Everything one settle step needs."""

    conn: Connection
    batch_no: str
    claim: Claim
    attempt: Attempt
    decision: Decision
    now: datetime
    log: structlog.typing.FilteringBoundLogger

    def flag(self) -> dict[str, object]:
        flag = self.decision.operator_flag
        return {"operator_flag": flag} if flag else {}


def _accepted(s: Settling) -> SubmitResult:
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


def _retry_same(s: Settling) -> SubmitResult:
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


def _wait(s: Settling) -> None:
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


def _wait_notify(s: Settling) -> SubmitResult:
    _wait(s)
    s.log.error("batch.awaiting_notification")
    return SubmitResult("awaiting_notification")


def _verify_duplicate(s: Settling) -> SubmitResult:
    _wait(s)
    s.log.error("batch.duplicate_unverified")
    return SubmitResult("awaiting_query")


def _hold(s: Settling) -> SubmitResult:
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


def _refused(s: Settling) -> None:
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


def _fail_item(s: Settling) -> SubmitResult:
    _refused(s)
    code = s.decision.code or "UNKNOWN_ERROR"
    outcomes = [(i.refund_id, RefundState.FAILED, code) for i in s.claim.items]
    record_completions(s.conn, ledger.finish_refunds(s.conn, s.batch_no, outcomes, source="submit"))
    s.log.warning("batch.refused")
    return SubmitResult("refused")


def _split(s: Settling) -> SubmitResult:
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


def _redate(s: Settling) -> SubmitResult:
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


def _rebatch(s: Settling) -> SubmitResult:
    _refused(s)
    ledger.return_to_pending(s.conn, s.batch_no)
    s.log.warning("batch.rebatched", refunds=len(s.claim.items))
    return SubmitResult("refused")


STEPS: dict[Action, Callable[[Settling], SubmitResult]] = {
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
