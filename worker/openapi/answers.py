"""The typed content of a verified OpenAPI answer: common fields and one body per method.

Every answer member carries `code` and `msg`, and on failure `sub_code` and
`sub_msg`. The method's own fields follow; the ones the refund channels use are
read into a body:

* `alipay.trade.refund` -> `TradeRefundResult`: `trade_no`, `out_trade_no`,
  `fund_change` (`Y`: money moved by this call; `N`: nothing moved by this call, for
  example a repeat of a request already done), `refund_fee` (the total refunded on
  the trade so far, not this refund alone) and `gmt_refund_pay`.
* `alipay.trade.fastpay.refund.query` -> `TradeRefundQueryResult`: `refund_status`
  (`REFUND_SUCCESS` once refunded; absent when there is no such refund, or not yet),
  `refund_amount`, `out_request_no`, `trade_no`, `out_trade_no`, `gmt_refund_pay`.
* `alipay.fund.coupon.order.refund` and `alipay.fund.coupon.operation.query` ->
  `CouponOperationResult`: `status` (`SUCCESS`, `INIT`, `CLOSED`), `auth_no`,
  `out_request_no`, `operation_id`, `amount`, `gmt_trans`.

Values are kept as the text Alipay sent (numbers as their digits); amounts are read
with `worker.mapi.amounts.parse_reported_amount` and are None when absent or not a
plain amount. A body never raises: a missing or odd field is None, and the
classification (`worker.openapi.codes`) decides what that means.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from types import MappingProxyType

from worker.mapi.amounts import parse_reported_amount
from worker.openapi.request import COUPON_QUERY, COUPON_REFUND, TRADE_REFUND, TRADE_REFUND_QUERY

__all__ = [
    "Answer",
    "AnswerBody",
    "CouponOperationResult",
    "MemberKind",
    "TradeRefundQueryResult",
    "TradeRefundResult",
    "Unverifiable",
    "read_body",
]


class MemberKind(enum.StrEnum):
    """Which member of the answer object carried the result."""

    RESPONSE = "response"  # `<method with _>_response`
    ERROR = "error"  # `error_response`, which may replace it


@dataclass(frozen=True)
class TradeRefundResult:
    trade_no: str | None
    out_trade_no: str | None
    fund_change: str | None
    refund_fee: Decimal | None
    gmt_refund_pay: str | None


@dataclass(frozen=True)
class TradeRefundQueryResult:
    trade_no: str | None
    out_trade_no: str | None
    out_request_no: str | None
    refund_status: str | None
    refund_amount: Decimal | None
    gmt_refund_pay: str | None


@dataclass(frozen=True)
class CouponOperationResult:
    auth_no: str | None
    out_request_no: str | None
    operation_id: str | None
    amount: Decimal | None
    status: str | None
    gmt_trans: str | None


AnswerBody = TradeRefundResult | TradeRefundQueryResult | CouponOperationResult


@dataclass(frozen=True)
class Answer:
    """A verified answer: where it came from, its codes, its scalar fields, its body.

    `fields` holds the member's top-level text and number values (nested objects
    and lists are left out); `body` is None for a method without a body reader or
    for an `error_response`.
    """

    method: str
    member: MemberKind
    code: str
    msg: str
    sub_code: str | None
    sub_msg: str | None
    fields: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    body: AnswerBody | None = None


@dataclass(frozen=True)
class Unverifiable:
    """No answer the worker may rely on: the outcome of the call is unknown.

    `reason` is a short sentence for logs (it never holds the body or the signature);
    `code`/`sub_code` are what an unsigned member claimed, for logs, and `unsigned` says
    the member came with an empty or no `sign` (see `worker/openapi/codes.py` for the one
    use of an unsigned claim: a setup refusal).
    """

    reason: str
    member: MemberKind | None = None
    code: str | None = None
    sub_code: str | None = None
    unsigned: bool = False


def read_body(method: str, fields: Mapping[str, str]) -> AnswerBody | None:
    """The typed body of `method`'s answer from its scalar fields (see module docstring)."""
    if method == TRADE_REFUND:
        return TradeRefundResult(
            trade_no=_text(fields, "trade_no"),
            out_trade_no=_text(fields, "out_trade_no"),
            fund_change=_text(fields, "fund_change"),
            refund_fee=_money(fields, "refund_fee"),
            gmt_refund_pay=_text(fields, "gmt_refund_pay"),
        )
    if method == TRADE_REFUND_QUERY:
        return TradeRefundQueryResult(
            trade_no=_text(fields, "trade_no"),
            out_trade_no=_text(fields, "out_trade_no"),
            out_request_no=_text(fields, "out_request_no"),
            refund_status=_text(fields, "refund_status"),
            refund_amount=_money(fields, "refund_amount"),
            gmt_refund_pay=_text(fields, "gmt_refund_pay"),
        )
    if method in (COUPON_REFUND, COUPON_QUERY):
        return CouponOperationResult(
            auth_no=_text(fields, "auth_no"),
            out_request_no=_text(fields, "out_request_no"),
            operation_id=_text(fields, "operation_id"),
            amount=_money(fields, "amount"),
            status=_text(fields, "status"),
            gmt_trans=_text(fields, "gmt_trans"),
        )
    return None


def _text(fields: Mapping[str, str], name: str) -> str | None:
    value = fields.get(name)
    if value is None:
        return None
    value = value.strip()
    return value or None


def _money(fields: Mapping[str, str], name: str) -> Decimal | None:
    value = _text(fields, name)
    return parse_reported_amount(value) if value is not None else None
