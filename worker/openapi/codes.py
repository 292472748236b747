"""What an OpenAPI answer establishes about one refund: the classification.

`classify(answer)` turns a verified `Answer` (or `Unverifiable`) into a `Verdict`:

* `SUCCEEDED`: the refund is done (`settlement` carries Alipay's ids).
* `IN_PROGRESS`: a coupon refund was taken and is not finished (`status` `INIT`):
  wait for its notification, or query.
* `NEEDS_QUERY`: the answer does not say whether the refund is done: a trade refund
  with `fund_change` `N` (nothing moved by this call; a repeat of a request that may
  have been done) or without `fund_change`, a coupon refund `10000` without a
  known `status`, or `ACQ.DISCORDANT_REPEAT_REQUEST` (this out_request_no was used
  before with other parameters: the earlier request may have been done).
* `NOT_FOUND`: only from a query: `10000` without `refund_status` for
  `alipay.trade.fastpay.refund.query`, meaning the refund has not been made (yet).
* `REFUSED`: a definite refusal of the refund, `code` says why: `40004` with a
  business `sub_code` on a refund call, or a coupon `status` `CLOSED` (code `CLOSED`)
  from the refund call or its query.
* `CONFIG_ERROR`: `40001`, `40002`, `40006` or `20001`: the application's setup is
  wrong (keys, parameters, permissions, authorisation); every call would fail alike.
* `UNKNOWN`: anything else: an unverifiable answer, `20000`, a `sub_code` that says
  the service failed (`isp.unknow-error`, `aop.unknow-error`, `ACQ.SYSTEM_ERROR`,
  whatever the code), `40004` without a well-formed business sub_code (none, or an
  `isp.`/`aop.` one, which names a failure of the platform), a refused query (a
  query's refusal says nothing about the refund), an `error_response` claiming
  `10000`, an unknown code or status.

An `error_response` member is classified like the method's member when it is signed
and verifies (it then proves what its code says); one with an empty or no signature
is `Unverifiable` and so `UNKNOWN`, never a refusal, with one exception: an unsigned
`error_response` with a setup code (`40001`, `40002`, `40006`, `20001`: the gateway
answers an unknown app id this way) is `CONFIG_ERROR`. The gateway refused the call at
its door, so nothing was refunded, and the consequence is only a halt of the channel
with every refund kept: a forged one costs a halt and an operator's `resume`, never
money; treated as unknown it would be retried without end.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from decimal import Decimal

from worker.openapi.answers import (
    Answer,
    CouponOperationResult,
    MemberKind,
    TradeRefundQueryResult,
    TradeRefundResult,
    Unverifiable,
)
from worker.openapi.request import COUPON_QUERY, COUPON_REFUND, TRADE_REFUND, TRADE_REFUND_QUERY

__all__ = [
    "CONFIG_CODES",
    "DISCORDANT_REPEAT",
    "SUCCESS_CODE",
    "UNKNOWN_CODE",
    "UNKNOWN_SUB_CODES",
    "Classification",
    "Settlement",
    "Verdict",
    "classify",
]

SUCCESS_CODE = "10000"
UNKNOWN_CODE = "20000"
BUSINESS_CODE = "40004"
CONFIG_CODES = frozenset({"40001", "40002", "40006", "20001"})
UNKNOWN_SUB_CODES = frozenset(
    {"isp.unknow-error", "aop.unknow-error", "ACQ.SYSTEM_ERROR", "AQC.SYSTEM_ERROR"}
)
DISCORDANT_REPEAT = "ACQ.DISCORDANT_REPEAT_REQUEST"
REFUND_SUCCESS = "REFUND_SUCCESS"
COUPON_CLOSED = "CLOSED"

_SUB_CODE = re.compile(r"[A-Za-z][A-Za-z0-9_.\-]{0,63}", re.ASCII)
_SERVICE_PREFIXES = ("isp.", "aop.")
_QUERIES = frozenset({TRADE_REFUND_QUERY, COUPON_QUERY})


class Verdict(enum.StrEnum):
    SUCCEEDED = "succeeded"
    IN_PROGRESS = "in_progress"
    NEEDS_QUERY = "needs_query"
    NOT_FOUND = "not_found"
    REFUSED = "refused"
    CONFIG_ERROR = "config_error"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Settlement:
    """Alipay's ids for a refund that is done (whatever the answer had; None if absent)."""

    trade_no: str | None = None
    out_trade_no: str | None = None
    operation_id: str | None = None
    amount: Decimal | None = None
    settled_at: str | None = None


@dataclass(frozen=True)
class Classification:
    """The verdict, the code that decided it (a sub_code, `CLOSED`...) and a log sentence."""

    verdict: Verdict
    detail: str
    code: str | None = None
    settlement: Settlement | None = None


def classify(answer: Answer | Unverifiable) -> Classification:
    """What `answer` establishes about the refund (rules in the module docstring)."""
    if isinstance(answer, Unverifiable):
        if answer.unsigned and answer.member is MemberKind.ERROR and answer.code in CONFIG_CODES:
            return Classification(
                Verdict.CONFIG_ERROR,
                f"unsigned setup refusal {answer.code}/{answer.sub_code}",
                answer.sub_code or answer.code,
            )
        return Classification(Verdict.UNKNOWN, f"no usable answer: {answer.reason}")
    code, sub_code = answer.code, answer.sub_code
    if sub_code in UNKNOWN_SUB_CODES:
        return Classification(Verdict.UNKNOWN, f"service failure {code}/{sub_code}", sub_code)
    if code == SUCCESS_CODE:
        if answer.member is MemberKind.ERROR:
            return Classification(Verdict.UNKNOWN, "error_response claiming success")
        return _success(answer)
    if code == UNKNOWN_CODE:
        return Classification(Verdict.UNKNOWN, f"outcome unknown ({code})", sub_code)
    if code in CONFIG_CODES:
        return Classification(
            Verdict.CONFIG_ERROR, f"configuration error {code}/{sub_code}", sub_code or code
        )
    if code == BUSINESS_CODE:
        if sub_code is None or not _SUB_CODE.fullmatch(sub_code):
            return Classification(Verdict.UNKNOWN, "40004 without a well-formed sub_code")
        if sub_code.startswith(_SERVICE_PREFIXES):
            return Classification(
                Verdict.UNKNOWN, f"40004 with a service sub_code {sub_code}", sub_code
            )
        if answer.method in _QUERIES:
            return Classification(Verdict.UNKNOWN, f"the query was refused ({sub_code})", sub_code)
        if sub_code == DISCORDANT_REPEAT:
            return Classification(
                Verdict.NEEDS_QUERY,
                "out_request_no was used before with other parameters",
                sub_code,
            )
        return Classification(Verdict.REFUSED, f"refund refused: {sub_code}", sub_code)
    return Classification(Verdict.UNKNOWN, f"unknown code {code[:20]!r}", sub_code)


def _success(answer: Answer) -> Classification:
    body = answer.body
    if answer.method == TRADE_REFUND and isinstance(body, TradeRefundResult):
        if body.fund_change == "Y":
            return Classification(
                Verdict.SUCCEEDED,
                "refunded: fund_change Y",
                settlement=Settlement(
                    trade_no=body.trade_no,
                    out_trade_no=body.out_trade_no,
                    settled_at=body.gmt_refund_pay,
                ),
            )
        if body.fund_change == "N":
            return Classification(Verdict.NEEDS_QUERY, "fund_change N: nothing moved by this call")
        return Classification(Verdict.NEEDS_QUERY, "10000 without fund_change Y or N")
    if answer.method == TRADE_REFUND_QUERY and isinstance(body, TradeRefundQueryResult):
        if body.refund_status is None:
            return Classification(Verdict.NOT_FOUND, "no refund under this out_request_no (yet)")
        if body.refund_status == REFUND_SUCCESS:
            return Classification(
                Verdict.SUCCEEDED,
                "query: REFUND_SUCCESS",
                settlement=Settlement(
                    trade_no=body.trade_no,
                    out_trade_no=body.out_trade_no,
                    amount=body.refund_amount,
                    settled_at=body.gmt_refund_pay,
                ),
            )
        return Classification(Verdict.UNKNOWN, f"query: refund_status {body.refund_status[:30]!r}")
    if answer.method in (COUPON_REFUND, COUPON_QUERY) and isinstance(body, CouponOperationResult):
        return _coupon(answer.method, body)
    return Classification(Verdict.UNKNOWN, f"10000 from {answer.method[:60]}, not a refund API")


def _coupon(method: str, body: CouponOperationResult) -> Classification:
    status = body.status
    if status == "SUCCESS":
        return Classification(
            Verdict.SUCCEEDED,
            "coupon refund SUCCESS",
            settlement=Settlement(
                operation_id=body.operation_id, amount=body.amount, settled_at=body.gmt_trans
            ),
        )
    if status == "INIT":
        return Classification(Verdict.IN_PROGRESS, "coupon refund INIT: in progress")
    if status == COUPON_CLOSED:
        return Classification(Verdict.REFUSED, "coupon refund CLOSED", COUPON_CLOSED)
    shown = "no status" if status is None else f"status {status[:30]!r}"
    if method == COUPON_REFUND:
        return Classification(Verdict.NEEDS_QUERY, f"coupon refund 10000 with {shown}")
    return Classification(Verdict.UNKNOWN, f"coupon query 10000 with {shown}")
