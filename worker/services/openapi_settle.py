"""Carrying out an OpenAPI decision on one refund (`worker.domain.policy.openapi`).

The one place an OpenAPI refund changes after intake: the submitter's answers and its
queries come here (and, later, the notifications).
"""

from __future__ import annotations

import structlog

from worker.adapters.postgres import openapi as store
from worker.adapters.postgres.pool import Connection
from worker.domain.policy.openapi import OpenApiAction, OpenApiDecision, SendOutcome
from worker.services.outcomes import record_completions
from worker.services.ports import OpenApiReply

__all__ = ["apply_decision"]

log = structlog.get_logger("worker.openapi")


def apply_decision(
    conn: Connection,
    refund: store.OpenApiRefund,
    decision: OpenApiDecision,
    *,
    step: str,
    reply: OpenApiReply | None,
    source: str,
    maybe_sent_before: bool | None = None,
) -> None:
    """Carry out `decision` on the locked, open `refund` (and write its event if final).

    The one place an OpenAPI refund changes after intake: the submitter's answers, its
    queries and the notifications all come here. `maybe_sent_before`: whether the
    refund was maybe sent before this call was claimed (default: as `refund` says).
    """
    A = OpenApiAction
    sending = step == "send" and reply is not None
    # A send that certainly did not leave leaves maybe_sent as it was before the claim.
    before = refund.maybe_sent if maybe_sent_before is None else maybe_sent_before
    maybe_sent = before or (
        sending and reply is not None and reply.outcome is not SendOutcome.NOT_SENT
    )
    if decision.action in (A.COMPLETE_SUCCEEDED, A.COMPLETE_FAILED):
        s = decision.settlement
        completions = store.finish_openapi(
            conn,
            refund.refund_id,
            state="succeeded" if decision.action is A.COMPLETE_SUCCEEDED else "failed",
            code="SUCCESS"
            if decision.action is A.COMPLETE_SUCCEEDED
            else decision.code or "FAILED",
            source=source,
            trade_no=s.trade_no if s else None,
            operation_id=s.operation_id if s else None,
            gmt_refund_pay=s.settled_at if s else None,
        )
        record_completions(conn, completions)
        return
    verdict = None
    code = None
    if sending and reply is not None and reply.classification is not None:
        verdict = reply.classification.verdict.value
        code = reply.classification.code
    if decision.action is A.HALT_CHANNEL:
        store.set_openapi_halt(conn, refund.partner, f"{decision.code}: {decision.reason}"[:300])
        log.error(
            "openapi.channel_halted",
            merchant=refund.partner,
            refund_id=refund.refund_id,
            out_request_no=refund.out_request_no,
            code=decision.code,
        )
        store.schedule_next(
            conn,
            refund.refund_id,
            step=None,
            delay_seconds=None,
            maybe_sent=maybe_sent,
            last_verdict=verdict,
            last_code=code,
        )
        return
    if decision.action is A.HOLD:
        store.schedule_next(
            conn,
            refund.refund_id,
            step=None,
            delay_seconds=None,
            maybe_sent=maybe_sent,
            last_verdict=verdict,
            last_code=code,
            held_reason=decision.reason[:300],
        )
        log.warning(
            "openapi.held",
            refund_id=refund.refund_id,
            out_request_no=refund.out_request_no,
            merchant=refund.partner,
            reason=decision.reason,
        )
        return
    next_step = "send" if decision.action is A.RETRY_SAME else "query"
    store.schedule_next(
        conn,
        refund.refund_id,
        step=next_step,
        delay_seconds=decision.delay_seconds or 0.0,
        maybe_sent=maybe_sent,
        last_verdict=verdict,
        last_code=code,
    )
