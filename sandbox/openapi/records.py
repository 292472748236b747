"""The entries of the OpenAPI books (`sandbox.openapi.books`) and their JSON views."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from worker.mapi import format_amount

__all__ = [
    "CouponNotice",
    "CouponOperation",
    "Envelope",
    "OpenTrade",
    "Refused",
    "TradeRefund",
]


@dataclass(frozen=True)
class Refused:
    """A business refusal: the 40004 sub_code and its message."""

    sub_code: str
    sub_msg: str


@dataclass
class OpenTrade:
    trade_no: str
    out_trade_no: str
    paid: Decimal
    status: str = "paid"
    refunded: Decimal = Decimal("0.00")

    def to_json(self) -> dict[str, Any]:
        return {
            "trade_no": self.trade_no,
            "out_trade_no": self.out_trade_no,
            "amount": format_amount(self.paid),
            "status": self.status,
            "refunded": format_amount(self.refunded),
        }


@dataclass
class Envelope:
    auth_no: str
    amount: Decimal
    status: str = "open"
    refunded: Decimal = Decimal("0.00")

    def to_json(self) -> dict[str, Any]:
        return {
            "auth_no": self.auth_no,
            "amount": format_amount(self.amount),
            "status": self.status,
            "refunded": format_amount(self.refunded),
        }


@dataclass(frozen=True)
class TradeRefund:
    trade_no: str
    out_trade_no: str
    out_request_no: str
    amount: Decimal
    gmt_refund_pay: str
    app_id: str

    def to_json(self) -> dict[str, Any]:
        return {
            "trade_no": self.trade_no,
            "out_trade_no": self.out_trade_no,
            "out_request_no": self.out_request_no,
            "amount": format_amount(self.amount),
            "gmt_refund_pay": self.gmt_refund_pay,
            "app_id": self.app_id,
        }


@dataclass(frozen=True)
class CouponOperation:
    """A coupon refund; `INIT` until `settle_ts` (wall-clock seconds), `SUCCESS` from then on."""

    auth_no: str
    out_request_no: str
    operation_id: str
    amount: Decimal
    gmt_trans: str
    settle_ts: float
    app_id: str
    notify_url: str | None
    notify_id: str | None

    def status(self, now_ts: float) -> str:
        return "SUCCESS" if now_ts >= self.settle_ts else "INIT"

    def to_json(self, now_ts: float) -> dict[str, Any]:
        return {
            "auth_no": self.auth_no,
            "out_request_no": self.out_request_no,
            "operation_id": self.operation_id,
            "amount": format_amount(self.amount),
            "status": self.status(now_ts),
            "gmt_trans": self.gmt_trans,
            "app_id": self.app_id,
            "notify_id": self.notify_id,
        }


@dataclass
class CouponNotice:
    """One coupon refund notification and how its deliveries went."""

    notify_id: str
    auth_no: str
    out_request_no: str
    url: str
    attempts: int = 0
    sends: int = 0
    lost: int = 0
    forged_sends: int = 0
    acknowledged: bool = False
    given_up: bool = False

    @property
    def pending(self) -> bool:
        return not (self.acknowledged or self.given_up)

    def to_json(self) -> dict[str, Any]:
        return {
            "notify_id": self.notify_id,
            "auth_no": self.auth_no,
            "out_request_no": self.out_request_no,
            "url": self.url,
            "attempts": self.attempts,
            "sends": self.sends,
            "lost": self.lost,
            "forged_sends": self.forged_sends,
            "acknowledged": self.acknowledged,
            "given_up": self.given_up,
        }
