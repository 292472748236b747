"""The money-safety rules of the OpenAPI refund channels, as one pure decision table.

One refund is one request, keyed by its `out_request_no`, which is derived from the
refund id (`worker.openapi.out_request_no`): every retry of a refund sends the same
number and the same amount, so Alipay does it at most once. A new number is never
made; nothing here can ask for one.

`decide_openapi(channel, outcome, answer, query, ...)` reads, in this order (the first
row that matches decides):

| # | attempt / answer                          | query answer        | action              |
|---|-------------------------------------------|---------------------|---------------------|
| 1 | answered SUCCEEDED                        | any                 | COMPLETE_SUCCEEDED  |
| 2 | answered CONFIG_ERROR                     | any                 | HALT_CHANNEL        |
| 3 | answered REFUSED, nothing sent before     | any                 | COMPLETE_FAILED     |
| 4 | answered REFUSED `CLOSED` (coupon status) | any                 | COMPLETE_FAILED     |
| 5 | any                                       | SUCCEEDED           | COMPLETE_SUCCEEDED  |
| 6 | any                                       | CONFIG_ERROR        | HALT_CHANNEL        |
| 7 | any                                       | REFUSED (`CLOSED`)  | COMPLETE_FAILED     |
| 8 | answered REFUSED, maybe sent before       | NOT_FOUND           | COMPLETE_FAILED     |
| 9 | answered NEEDS_QUERY, DISCORDANT_REPEAT   | NOT_FOUND           | HOLD                |
|10 | any                                       | NOT_FOUND           | RETRY_SAME          |
|11 | any, coupon channel                       | IN_PROGRESS         | WAIT_NOTIFY         |
|12 | any                                       | anything else       | QUERY_FIRST         |
|13 | answered REFUSED, maybe sent before       | none                | QUERY_FIRST         |
|14 | answered NEEDS_QUERY                      | none                | QUERY_FIRST         |
|15 | answered IN_PROGRESS, coupon channel      | none                | WAIT_NOTIFY         |
|16 | answered IN_PROGRESS, trade channel       | none                | QUERY_FIRST         |
|17 | not sent, unknown outcome, or answered    | none                | RETRY_SAME          |
|   | UNKNOWN / NOT_FOUND                       |                     |                     |

Rows 1-4: a verified definite answer to the refund call wins over anything a query
says. A refusal is definite (row 3) unless an earlier attempt of the same
out_request_no may have reached Alipay (`maybe_sent_before`): the earlier one may
have been done, so a query must show nothing was refunded first (rows 8, 13). A
coupon `CLOSED` is the status of this very operation, so it is final (row 4).

Rows 5-12: a query was made because the answer did not settle the refund. A query
that does not know the refund (NOT_FOUND) means it is not done: send the same request
again (row 10), except after `ACQ.DISCORDANT_REPEAT_REQUEST` (the number was used with
other parameters: an operator must look, row 9). A query that itself failed is asked
again (row 12).

Row 17: the outcome is unknown (not sent, timeout, reset, unverifiable answer, `20000`,
unknown codes): the same request is sent again, which is safe (it is idempotent).

Waiting actions carry `delay_seconds`: RETRY_SAME and QUERY_FIRST back off from
`RETRY_BASE_SECONDS` doubling to `RETRY_CAP_SECONDS` by `attempts` (every call made for
this refund so far, queries included); WAIT_NOTIFY waits `NOTIFY_WAIT_SECONDS` for the
notification before querying. Once `attempts` reaches `MAX_UNSETTLED_ATTEMPTS` a refund
that is still unsettled is put on HOLD for an operator instead of being tried again.

`decide_coupon_notification` is the rule for a verified coupon refund notification;
`coupon_notification_mismatch` says why one does not belong to the refund found by its
`out_request_no` (another channel, another `auth_no`, another amount), so that it
changes nothing.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from decimal import Decimal

from worker.domain.backoff import backoff_delay
from worker.openapi import Classification, CouponNotification, Settlement, Verdict
from worker.openapi.codes import COUPON_CLOSED, DISCORDANT_REPEAT

__all__ = [
    "MAX_UNSETTLED_ATTEMPTS",
    "NOTIFY_WAIT_SECONDS",
    "RETRY_BASE_SECONDS",
    "RETRY_CAP_SECONDS",
    "Channel",
    "OpenApiAction",
    "OpenApiDecision",
    "SendOutcome",
    "coupon_notification_mismatch",
    "decide_coupon_notification",
    "decide_openapi",
]

RETRY_BASE_SECONDS = 2.0
RETRY_CAP_SECONDS = 300.0
# How long a coupon refund in progress waits for its notification before a query.
NOTIFY_WAIT_SECONDS = 600.0
# Calls (attempts and queries) after which an unsettled refund goes to an operator.
MAX_UNSETTLED_ATTEMPTS = 30


class Channel(enum.StrEnum):
    TRADE_REFUND = "trade_refund"  # alipay.trade.refund, queried by fastpay.refund.query
    COUPON_REFUND = "coupon_refund"  # alipay.fund.coupon.order.refund, notified


class SendOutcome(enum.StrEnum):
    ANSWERED = "answered"  # an answer came back (verified or not: see its classification)
    NOT_SENT = "not_sent"  # the request certainly did not reach the gateway
    UNKNOWN = "unknown"  # timeout, reset, 5xx: the gateway may have it


class OpenApiAction(enum.StrEnum):
    COMPLETE_SUCCEEDED = "complete_succeeded"  # the refund is done: record Alipay's ids
    COMPLETE_FAILED = "complete_failed"  # definitely refused: record the code
    RETRY_SAME = "retry_same"  # send the same request (same out_request_no) after a delay
    QUERY_FIRST = "query_first"  # ask Alipay about this out_request_no after a delay
    WAIT_NOTIFY = "wait_notify"  # wait for the notification, query after the delay
    HALT_CHANNEL = "halt_channel"  # the app's setup is wrong: stop its channel, keep refunds
    HOLD = "hold"  # keep the refund for an operator: nothing more is sent for it


# Actions after which the refund is final.
FINAL = frozenset({OpenApiAction.COMPLETE_SUCCEEDED, OpenApiAction.COMPLETE_FAILED})
_DELAYED = frozenset({OpenApiAction.RETRY_SAME, OpenApiAction.QUERY_FIRST})
_UNSETTLED = _DELAYED | {OpenApiAction.WAIT_NOTIFY}


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenApiDecision:
    """What to do with one refund; `row` is the table row (module docstring) that decided."""

    action: OpenApiAction
    reason: str
    row: int
    code: str | None = None
    settlement: Settlement | None = None
    delay_seconds: float | None = None


def decide_openapi(
    channel: Channel,
    outcome: SendOutcome,
    answer: Classification | None,
    query: Classification | None = None,
    *,
    maybe_sent_before: bool = False,
    attempts: int = 1,
) -> OpenApiDecision:
    """What to do after a refund call (and the query that followed it, if any).

    `answer` is the classified answer when `outcome` is ANSWERED (None otherwise);
    `query` the classified answer of a query made after it. `maybe_sent_before`:
    an earlier attempt of this out_request_no may have reached the gateway.
    `attempts` counts the calls made for this refund so far, this one included.
    """
    if attempts < 1:
        raise ValueError("attempts counts the calls made, from 1")
    if (outcome is SendOutcome.ANSWERED) != (answer is not None):
        raise ValueError("an answer is given exactly when the outcome is ANSWERED")
    decision = _row(channel, answer, query, maybe_sent_before=maybe_sent_before)
    if decision.action in _UNSETTLED and attempts >= MAX_UNSETTLED_ATTEMPTS:
        return OpenApiDecision(
            action=OpenApiAction.HOLD,
            reason=f"still unsettled after {attempts} calls: {decision.reason}",
            row=decision.row,
            code=decision.code,
        )
    if decision.action in _DELAYED:
        delay = backoff_delay(attempts - 1, base=RETRY_BASE_SECONDS, cap=RETRY_CAP_SECONDS)
        return _with_delay(decision, delay)
    if decision.action is OpenApiAction.WAIT_NOTIFY:
        return _with_delay(decision, NOTIFY_WAIT_SECONDS)
    return decision


def decide_coupon_notification(notification: CouponNotification) -> OpenApiDecision:
    """A verified coupon refund notification: `SUCCESS` completes the refund, else query."""
    if notification.succeeded:
        return OpenApiDecision(
            action=OpenApiAction.COMPLETE_SUCCEEDED,
            reason="notified: coupon refund SUCCESS",
            row=0,
            settlement=Settlement(
                operation_id=notification.operation_id,
                amount=notification.amount,
                settled_at=notification.gmt_trans,
            ),
        )
    return OpenApiDecision(
        action=OpenApiAction.QUERY_FIRST,
        reason=f"notified with status {notification.status}: ask for the operation",
        row=0,
        code=notification.status,
        delay_seconds=0.0,
    )


def coupon_notification_mismatch(
    notification: CouponNotification,
    *,
    channel: Channel,
    auth_no: str | None,
    amount: Decimal,
) -> str | None:
    """Why the notification is not about this refund (found by its out_request_no), or None.

    It must be a coupon refund of the same red envelope (`auth_no`) for the same amount:
    a notification that differs in any of them proves nothing about the refund.
    """
    if channel is not Channel.COUPON_REFUND:
        return f"the refund is a {channel.value}, not a coupon refund"
    if notification.auth_no != auth_no:
        return "auth_no differs from the refund's"
    if notification.amount != amount:
        return f"amount {notification.amount} differs from the refund's {amount}"
    return None


def _with_delay(decision: OpenApiDecision, delay: float) -> OpenApiDecision:
    return OpenApiDecision(
        action=decision.action,
        reason=decision.reason,
        row=decision.row,
        code=decision.code,
        settlement=decision.settlement,
        delay_seconds=delay,
    )


def _row(
    channel: Channel,
    answer: Classification | None,
    query: Classification | None,
    *,
    maybe_sent_before: bool,
) -> OpenApiDecision:
    a = answer.verdict if answer is not None else None
    code = answer.code if answer is not None else None
    A = OpenApiAction
    if answer is not None and a is Verdict.SUCCEEDED:
        return _d(A.COMPLETE_SUCCEEDED, 1, answer.detail, code, answer.settlement)
    if answer is not None and a is Verdict.CONFIG_ERROR:
        return _d(A.HALT_CHANNEL, 2, answer.detail, code)
    if answer is not None and a is Verdict.REFUSED:
        if not maybe_sent_before:
            return _d(A.COMPLETE_FAILED, 3, answer.detail, code)
        if code == COUPON_CLOSED:
            return _d(A.COMPLETE_FAILED, 4, answer.detail, code)
    if query is not None:
        return _query_row(channel, answer, query)
    if a is Verdict.REFUSED:
        return _d(A.QUERY_FIRST, 13, "refused after an unknown outcome: confirm first", code)
    if a is Verdict.NEEDS_QUERY:
        return _d(A.QUERY_FIRST, 14, f"{_detail(answer)}: ask before anything else", code)
    if a is Verdict.IN_PROGRESS:
        if channel is Channel.COUPON_REFUND:
            return _d(A.WAIT_NOTIFY, 15, _detail(answer), code)
        return _d(A.QUERY_FIRST, 16, f"trade refund in progress: {_detail(answer)}", code)
    what = _detail(answer) if answer is not None else "no answer"
    return _d(A.RETRY_SAME, 17, f"outcome unknown ({what}): send the same request", code)


def _query_row(
    channel: Channel, answer: Classification | None, query: Classification
) -> OpenApiDecision:
    A = OpenApiAction
    q = query.verdict
    code = answer.code if answer is not None else None
    if q is Verdict.SUCCEEDED:
        return _d(A.COMPLETE_SUCCEEDED, 5, query.detail, query.code, query.settlement)
    if q is Verdict.CONFIG_ERROR:
        return _d(A.HALT_CHANNEL, 6, f"query: {query.detail}", query.code)
    if q is Verdict.REFUSED:
        return _d(A.COMPLETE_FAILED, 7, f"query: {query.detail}", query.code)
    if q is Verdict.NOT_FOUND:
        if answer is not None and answer.verdict is Verdict.REFUSED:
            return _d(A.COMPLETE_FAILED, 8, f"refused and not refunded: {answer.detail}", code)
        if answer is not None and code == DISCORDANT_REPEAT:
            return _d(A.HOLD, 9, "out_request_no used with other parameters, not refunded", code)
        return _d(A.RETRY_SAME, 10, "query: not refunded: send the same request again", code)
    if q is Verdict.IN_PROGRESS and channel is Channel.COUPON_REFUND:
        return _d(A.WAIT_NOTIFY, 11, f"query: {query.detail}", code)
    return _d(A.QUERY_FIRST, 12, f"query did not settle it ({query.detail}): ask again", code)


def _d(
    action: OpenApiAction,
    row: int,
    reason: str,
    code: str | None,
    settlement: Settlement | None = None,
) -> OpenApiDecision:
    return OpenApiDecision(action=action, reason=reason, row=row, code=code, settlement=settlement)


def _detail(answer: Classification | None) -> str:
    return answer.detail if answer is not None else "no answer"
