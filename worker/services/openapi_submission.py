"""The OpenAPI submitter: one request per refund (channels `trade` and `coupon`).

`submit_openapi_refund` makes the refund's next call, which is either the refund
request itself (`send`) or a query (`query`, `alipay.trade.fastpay.refund.query` /
`alipay.fund.coupon.operation.query`), in three steps:

1. claim: lock the refund, check it is due, open, not held, not claimed by a live job,
   and that its merchant's application is not halted and has fewer than
   `max_in_flight` calls in flight; count the call and, for a send, mark the refund
   maybe sent, then commit, *before* anything leaves;
2. call the gateway with the same `out_request_no` and amount as every earlier attempt
   (no lock held meanwhile);
3. settle: lock again and apply `decide_openapi`'s decision, unless a notification (or
   another path) settled the refund meanwhile; the call and its raw answer are stored
   as evidence in the same transaction.

A claim older than the lease was lost in a crash: the refund stays maybe sent and is
claimed again, with the same `out_request_no`. Queries are the reconciliation of the
OpenAPI channels: the decision table asks for one (QUERY_FIRST, WAIT_NOTIFY) and its
answer is applied by this same code path.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import structlog

from worker.adapters.postgres import openapi as store
from worker.adapters.postgres.pool import Database
from worker.domain.errors import ConfigError, ProtocolError
from worker.domain.merchants import Merchants
from worker.domain.policy.openapi import (
    Channel,
    OpenApiAction,
    OpenApiDecision,
    SendOutcome,
    decide_openapi,
)
from worker.observability.metrics import OPENAPI_CALLS
from worker.openapi import (
    COUPON_QUERY,
    COUPON_REFUND,
    TRADE_REFUND,
    TRADE_REFUND_QUERY,
    Classification,
    OpenApiApp,
    Verdict,
    coupon_query_request,
    coupon_refund_request,
    trade_refund_query_request,
    trade_refund_request,
)
from worker.services.openapi_settle import apply_decision
from worker.services.ports import OpenApiGateway, OpenApiReply

__all__ = [
    "CHANNELS",
    "OpenApiResult",
    "apply_decision",
    "due_openapi",
    "submit_openapi_refund",
]

log = structlog.get_logger("worker.openapi")

Clock = Callable[[], datetime]

CHANNELS = {"trade": Channel.TRADE_REFUND, "coupon": Channel.COUPON_REFUND}
# When the in-flight limit of the app is reached, try again after this long.
BUSY_DELAY_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class OpenApiResult:
    """What the job did: `skipped` (and why) or the decision's action."""

    what: str
    detail: str = ""


def _method(channel: str, step: str) -> str:
    if channel == "trade":
        return TRADE_REFUND if step == "send" else TRADE_REFUND_QUERY
    return COUPON_REFUND if step == "send" else COUPON_QUERY


def _request(
    refund: store.OpenApiRefund, step: str, app: OpenApiApp, now: datetime, notify_url: str
) -> dict[str, str]:
    if refund.channel == "trade":
        if step == "send":
            return trade_refund_request(
                app,
                out_request_no=refund.out_request_no,
                amount=refund.amount,
                now=now,
                trade_no=refund.trade_no,
                out_trade_no=refund.out_trade_no,
                reason=refund.reason or "",
            )
        return trade_refund_query_request(
            app,
            out_request_no=refund.out_request_no,
            now=now,
            trade_no=refund.trade_no,
            out_trade_no=refund.out_trade_no,
        )
    assert refund.auth_no is not None
    if step == "send":
        return coupon_refund_request(
            app,
            auth_no=refund.auth_no,
            out_request_no=refund.out_request_no,
            amount=refund.amount,
            now=now,
            notify_url=notify_url,
            remark=refund.reason or "",
        )
    return coupon_query_request(
        app, auth_no=refund.auth_no, out_request_no=refund.out_request_no, now=now
    )


@dataclass(frozen=True, slots=True)
class _Claim:
    refund: store.OpenApiRefund
    step: str
    attempt: int
    app: OpenApiApp


def _claim(
    db: Database,
    merchants: Merchants,
    refund_id: str,
    *,
    lease_seconds: float,
    max_in_flight: int,
) -> _Claim | OpenApiResult:
    with db.transaction() as conn:
        refund = store.lock_openapi_refund(conn, refund_id)
        if refund is None:
            return OpenApiResult("skipped", "no such OpenAPI refund")
        if refund.final:
            return OpenApiResult("skipped", f"already {refund.state}")
        if refund.held_reason:
            return OpenApiResult("skipped", "held for an operator")
        if refund.next_attempt_at is not None and refund.next_attempt_at > refund.now:
            return OpenApiResult("skipped", "not due yet")
        if refund.claimed_at is not None:
            age = (refund.now - refund.claimed_at).total_seconds()
            if age < lease_seconds:
                return OpenApiResult("skipped", "a call is in flight")
            log.warning(
                "openapi.claim_lost",
                refund_id=refund_id,
                out_request_no=refund.out_request_no,
                merchant=refund.partner,
                age_seconds=round(age, 1),
            )
        merchant = merchants.get(refund.partner)
        app = merchant.openapi_app if merchant is not None else None
        if app is None:
            return OpenApiResult("skipped", "the merchant has no OpenAPI application")
        if store.openapi_halt(conn, refund.partner) is not None:
            return OpenApiResult("skipped", "the merchant's OpenAPI channel is halted")
        store.lock_app(conn, refund.partner)
        if store.in_flight(conn, refund.partner, lease_seconds) >= max_in_flight:
            store.schedule_next(
                conn,
                refund_id,
                step=None,
                delay_seconds=BUSY_DELAY_SECONDS,
                maybe_sent=refund.maybe_sent,
            )
            return OpenApiResult("skipped", "in-flight limit of the application reached")
        step = refund.next_step or "send"
        attempt = store.claim_call(conn, refund_id, sending=step == "send")
    return _Claim(refund, step, attempt, app)


# A refund handed to the queue and not claimed within this long is handed over again.
REDRIVE_AFTER_SECONDS = 60.0


def due_openapi(db: Database, *, lease_seconds: float) -> list[str]:
    """The OpenAPI refunds whose next call is due, marked handed over (the scheduler
    enqueues them): new ones, retries and queries after their delay, lost jobs."""
    with db.transaction() as conn:
        return store.due_openapi_refunds(
            conn, lease_seconds=lease_seconds, redrive_after=REDRIVE_AFTER_SECONDS
        )


def submit_openapi_refund(
    db: Database,
    gateway: OpenApiGateway,
    merchants: Merchants,
    refund_id: str,
    *,
    clock: Clock,
    notify_url: str,
    lease_seconds: float,
    max_in_flight: int,
) -> OpenApiResult:
    """Make the refund's next call and apply what it establishes (module docstring)."""
    claim = _claim(
        db, merchants, refund_id, lease_seconds=lease_seconds, max_in_flight=max_in_flight
    )
    if isinstance(claim, OpenApiResult):
        log.info("openapi.skipped", refund_id=refund_id, reason=claim.detail)
        return claim
    refund, step = claim.refund, claim.step
    bound = log.bind(
        refund_id=refund_id,
        out_request_no=refund.out_request_no,
        merchant=refund.partner,
        channel=refund.channel,
        step=step,
        attempt=claim.attempt,
    )
    started = clock()
    method = _method(refund.channel, step)
    try:
        params = _request(refund, step, claim.app, started, notify_url)
    except ConfigError as exc:
        reply = OpenApiReply(SendOutcome.NOT_SENT, reason="config_error")
        problem: Classification | None = Classification(Verdict.CONFIG_ERROR, str(exc))
    except ProtocolError as exc:
        reply = OpenApiReply(SendOutcome.NOT_SENT, reason="bad_request")
        problem = Classification(Verdict.UNKNOWN, str(exc))
    else:
        problem = None
        bound.info("openapi.call", method=method)
        reply = gateway.call(
            params, public_key_pem=claim.app.alipay_public_key_pem, partner=refund.partner
        )
    with db.transaction() as conn:
        current = store.lock_openapi_refund(conn, refund_id)
        assert current is not None
        if current.final:
            store.record_call(
                conn,
                refund_id,
                claim.attempt,
                kind=step,
                method=method,
                started_at=started,
                outcome=reply.outcome.value,
                verdict=_verdict(reply),
                code=_code(reply),
                action="superseded",
                detail=f"settled meanwhile ({current.state})",
                answer=reply.raw,
            )
            store.release_claim(conn, refund_id)
            bound.info("openapi.superseded", state=current.state)
            return OpenApiResult("superseded", current.state)
        if problem is not None:
            decision = _problem_decision(problem)
        else:
            decision = _decide(refund, step, reply, claim.attempt)
        apply_decision(
            conn,
            current,
            decision,
            step=step,
            reply=reply,
            source="submit",
            maybe_sent_before=refund.maybe_sent,
        )
        store.record_call(
            conn,
            refund_id,
            claim.attempt,
            kind=step,
            method=method,
            started_at=started,
            outcome=reply.outcome.value,
            verdict=_verdict(reply),
            code=decision.code,
            action=decision.action.value,
            detail=decision.reason,
            answer=reply.raw,
        )
    OPENAPI_CALLS.labels(
        merchant=refund.partner,
        channel=refund.channel,
        outcome=reply.outcome.value,
        action=decision.action.value,
    ).inc()
    emit = bound.info if decision.action in _QUIET else bound.warning
    emit(
        "openapi.settled",
        outcome=reply.outcome.value,
        reason=reply.reason or None,
        action=decision.action.value,
        row=decision.row,
        code=decision.code,
        detail=decision.reason,
        delay_seconds=decision.delay_seconds,
    )
    return OpenApiResult(decision.action.value, decision.reason)


_QUIET = frozenset(
    {OpenApiAction.COMPLETE_SUCCEEDED, OpenApiAction.WAIT_NOTIFY, OpenApiAction.QUERY_FIRST}
)


def _verdict(reply: OpenApiReply) -> str | None:
    return reply.classification.verdict.value if reply.classification else None


def _code(reply: OpenApiReply) -> str | None:
    return reply.classification.code if reply.classification else None


def _problem_decision(problem: Classification) -> OpenApiDecision:
    """A request the worker could not even build: the app's setup, or a field it refuses."""
    if problem.verdict is Verdict.CONFIG_ERROR:
        return OpenApiDecision(
            action=OpenApiAction.HALT_CHANNEL, reason=problem.detail, row=0, code="CONFIG"
        )
    return OpenApiDecision(
        action=OpenApiAction.HOLD, reason=f"request not built: {problem.detail}", row=0
    )


def _decide(
    refund: store.OpenApiRefund, step: str, reply: OpenApiReply, attempts: int
) -> OpenApiDecision:
    channel = CHANNELS[refund.channel]
    if step == "send":
        return decide_openapi(
            channel,
            reply.outcome,
            reply.classification,
            None,
            maybe_sent_before=refund.maybe_sent,
            attempts=attempts,
        )
    # A query: read with the last answer to the refund call itself, if there was one.
    earlier = (
        Classification(Verdict(refund.last_verdict), "an earlier answer", refund.last_code)
        if refund.last_verdict
        else None
    )
    query = reply.classification or Classification(
        Verdict.UNKNOWN, f"the query was not answered ({reply.reason})"
    )
    return decide_openapi(
        channel,
        SendOutcome.ANSWERED if earlier is not None else SendOutcome.UNKNOWN,
        earlier,
        query,
        maybe_sent_before=refund.maybe_sent,
        attempts=attempts,
    )
