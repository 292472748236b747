"""The OpenAPI gateway's books: trades, red envelopes, every refund made, the notifications.

Pure apart from its lock (`OpenApiBooks.lock`, re-entrant; every method takes it):
the clock's readings (`gmt`, `today`, `now_ts`) are passed in.

* A trade has `trade_no` (16-64 digits) and `out_trade_no`, a paid amount, a
  status (`paid` or `closed`). A red envelope has `auth_no` and an amount.
  Both are made by the control API, or on a first refund when auto-creation is
  on (`auto_amount` given): a trade named only by `out_trade_no` then gets a
  new `trade_no`.
* A refund is keyed by (`trade_no`, `out_request_no`) or (`auth_no`,
  `out_request_no`). **Idempotency**: a repeat with the same amount is the same
  refund (nothing moves; a trade refund then answers `fund_change` `N`); with
  another amount it is refused: `ACQ.DISCORDANT_REPEAT_REQUEST` (trade) or
  `UNIQUE_VIOLATION` (envelope).
* Refusals (`Refused`, a 40004 sub_code): more than what is left
  `ACQ.REFUND_AMT_NOT_EQUAL_TOTAL` (trade) / `MONEY_NOT_ENOUGH` (envelope); an
  unknown trade `ACQ.TRADE_NOT_EXIST`, a closed one `ACQ.TRADE_STATUS_ERROR`; an
  unknown envelope `AUTH_ORDER_NOT_EXIST`, a closed one `ORDER_ALREADY_CLOSED`;
  a query of an unknown trade `ACQ.TRADE_NOT_EXIST`, of an unknown coupon
  operation `OPERATION_NOT_EXIST`.
* Every execution (money moved) is appended to `executions`; the red flags of
  `summary` are computed from that list, not from the rules above, so a broken
  rule shows: `double_executed` (a key executed twice) and `over_refunded` (a
  trade or envelope whose executions exceed its amount).
"""

from __future__ import annotations

import secrets
import threading
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from sandbox.openapi.records import (
    CouponNotice,
    CouponOperation,
    Envelope,
    OpenTrade,
    Refused,
    TradeRefund,
)
from worker.mapi import format_amount

__all__ = ["OpenApiBooks"]

Kind = Literal["trade", "envelope"]


@dataclass
class OpenApiBooks:
    """The books (see the module docstring)."""

    trades: dict[str, OpenTrade] = field(default_factory=dict)
    envelopes: dict[str, Envelope] = field(default_factory=dict)
    refunds: dict[tuple[str, str], TradeRefund] = field(default_factory=dict)
    operations: dict[tuple[str, str], CouponOperation] = field(default_factory=dict)
    notices: dict[str, CouponNotice] = field(default_factory=dict)
    executions: list[tuple[Kind, str, str, Decimal]] = field(default_factory=list)
    refused: Counter[str] = field(default_factory=Counter)
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    # -- making trades and envelopes --------------------------------------------

    def add_trade(
        self,
        *,
        trade_no: str | None,
        out_trade_no: str | None,
        amount: Decimal,
        status: str,
        today: str,
    ) -> OpenTrade:
        """Create (or change the amount and status of) a trade; either number may be None."""
        with self.lock:
            known = self._trade(trade_no, out_trade_no)
            if isinstance(known, OpenTrade):
                known.paid, known.status = amount, status
                return known
            if known == "mismatch":
                raise ValueError("trade_no and out_trade_no name two different trades")
            number = trade_no or self._new_trade_no(today)
            trade = OpenTrade(number, out_trade_no or f"sandbox_{number}", amount, status)
            if any(t.out_trade_no == trade.out_trade_no for t in self.trades.values()):
                raise ValueError("out_trade_no belongs to another trade")
            self.trades[number] = trade
            return trade

    def add_envelope(
        self, *, auth_no: str | None, amount: Decimal, status: str, today: str
    ) -> Envelope:
        """Create (or change) a red envelope; a new `auth_no` when None."""
        with self.lock:
            number = auth_no or f"{today}10002001{secrets.randbelow(10**12):012d}"
            envelope = self.envelopes.get(number)
            if envelope is None:
                envelope = self.envelopes[number] = Envelope(number, amount, status)
            else:
                envelope.amount, envelope.status = amount, status
            return envelope

    # -- trade refunds ----------------------------------------------------------

    def trade_refund(
        self,
        *,
        trade_no: str | None,
        out_trade_no: str | None,
        out_request_no: str,
        amount: Decimal,
        gmt: str,
        today: str,
        app_id: str,
        auto_amount: Decimal | None,
    ) -> Refused | tuple[TradeRefund, bool, OpenTrade]:
        """Refund `amount` of a trade once: (refund, whether it was made now, trade) or Refused."""
        with self.lock:
            trade = self._trade(trade_no, out_trade_no)
            if trade is None and auto_amount is not None:
                trade = self.add_trade(
                    trade_no=trade_no,
                    out_trade_no=out_trade_no,
                    amount=auto_amount,
                    status="paid",
                    today=today,
                )
            if not isinstance(trade, OpenTrade):
                return self._refuse("ACQ.TRADE_NOT_EXIST", "交易不存在")
            known = self.refunds.get((trade.trade_no, out_request_no))
            if known is not None:
                if known.amount != amount:
                    return self._refuse(
                        "ACQ.DISCORDANT_REPEAT_REQUEST", "请求信息不一致 (another amount)"
                    )
                return known, False, trade
            if trade.status != "paid":
                return self._refuse("ACQ.TRADE_STATUS_ERROR", "交易状态不合法")
            if trade.refunded + amount > trade.paid:
                return self._refuse("ACQ.REFUND_AMT_NOT_EQUAL_TOTAL", "退款金额超限")
            refund = TradeRefund(
                trade.trade_no, trade.out_trade_no, out_request_no, amount, gmt, app_id
            )
            self.refunds[(trade.trade_no, out_request_no)] = refund
            trade.refunded += amount
            self.executions.append(("trade", trade.trade_no, out_request_no, amount))
            return refund, True, trade

    def refund_query(
        self, *, trade_no: str | None, out_trade_no: str | None, out_request_no: str
    ) -> Refused | tuple[OpenTrade, TradeRefund | None]:
        with self.lock:
            trade = self._trade(trade_no, out_trade_no)
            if not isinstance(trade, OpenTrade):
                return Refused("ACQ.TRADE_NOT_EXIST", "交易不存在")
            return trade, self.refunds.get((trade.trade_no, out_request_no))

    # -- coupon refunds ---------------------------------------------------------

    def coupon_refund(
        self,
        *,
        auth_no: str,
        out_request_no: str,
        amount: Decimal,
        gmt: str,
        today: str,
        settle_ts: float,
        app_id: str,
        notify_url: str | None,
        notify_id: str | None,
        auto_amount: Decimal | None,
    ) -> Refused | tuple[CouponOperation, bool]:
        """Give back `amount` of an envelope once: (operation, made now) or Refused."""
        with self.lock:
            envelope = self.envelopes.get(auth_no)
            if envelope is None and auto_amount is not None:
                envelope = self.add_envelope(
                    auth_no=auth_no, amount=auto_amount, status="open", today=today
                )
            if envelope is None:
                return self._refuse("AUTH_ORDER_NOT_EXIST", "资金授权订单不存在")
            known = self.operations.get((auth_no, out_request_no))
            if known is not None:
                if known.amount != amount:
                    return self._refuse(
                        "UNIQUE_VIOLATION", "商户本次资金操作的请求流水号与之前有重复"
                    )
                return known, False
            if envelope.status != "open":
                return self._refuse("ORDER_ALREADY_CLOSED", "红包已关闭")
            if envelope.refunded + amount > envelope.amount:
                return self._refuse("MONEY_NOT_ENOUGH", "本次操作退款的金额超过剩余可退款金额")
            operation = CouponOperation(
                auth_no=auth_no,
                out_request_no=out_request_no,
                operation_id=f"{today}{secrets.randbelow(10**12):012d}",
                amount=amount,
                gmt_trans=gmt,
                settle_ts=settle_ts,
                app_id=app_id,
                notify_url=notify_url,
                notify_id=notify_id,
            )
            self.operations[(auth_no, out_request_no)] = operation
            envelope.refunded += amount
            self.executions.append(("envelope", auth_no, out_request_no, amount))
            if notify_url is not None and notify_id is not None:
                self.notices[notify_id] = CouponNotice(
                    notify_id, auth_no, out_request_no, notify_url
                )
            return operation, True

    def coupon_query(self, *, auth_no: str, out_request_no: str) -> Refused | CouponOperation:
        with self.lock:
            operation = self.operations.get((auth_no, out_request_no))
            if operation is None:
                return Refused("OPERATION_NOT_EXIST", "资金操作不存在")
            return operation

    # -- views ------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        """Counts and the red flags (see the module docstring)."""
        with self.lock:
            executed = Counter(
                (kind, number, request) for kind, number, request, _ in self.executions
            )
            totals: dict[tuple[Kind, str], Decimal] = {}
            for kind, number, _, amount in self.executions:
                totals[(kind, number)] = totals.get((kind, number), Decimal("0.00")) + amount
            over = []
            for (kind, number), total in sorted(totals.items()):
                limit = (
                    self.trades[number].paid if kind == "trade" else self.envelopes[number].amount
                )
                if total > limit:
                    over.append(
                        {
                            "kind": kind,
                            "number": number,
                            "amount": format_amount(limit),
                            "refunded": format_amount(total),
                        }
                    )
            notes = list(self.notices.values())
            return {
                "trades": len(self.trades),
                "envelopes": len(self.envelopes),
                "trade_refunds": len(self.refunds),
                "coupon_refunds": len(self.operations),
                "refunds_executed": len(self.executions),
                "refused_by_code": dict(self.refused),
                "notifications": {
                    "total": len(notes),
                    "pending": sum(1 for n in notes if n.pending),
                    "acknowledged": sum(1 for n in notes if n.acknowledged),
                    "given_up": sum(1 for n in notes if n.given_up),
                    "sent": sum(n.sends for n in notes),
                    "lost": sum(n.lost for n in notes),
                },
                "double_executed": [
                    {"kind": kind, "number": number, "out_request_no": request, "times": times}
                    for (kind, number, request), times in sorted(executed.items())
                    if times > 1
                ],
                "over_refunded": over,
            }

    def view(self, now_ts: float) -> dict[str, Any]:
        """Everything in the books, as JSON (`GET /_sandbox/openapi/ledger`)."""
        with self.lock:
            return {
                "trades": {t.trade_no: t.to_json() for t in self.trades.values()},
                "envelopes": {e.auth_no: e.to_json() for e in self.envelopes.values()},
                "trade_refunds": [r.to_json() for r in self.refunds.values()],
                "coupon_refunds": [o.to_json(now_ts) for o in self.operations.values()],
                "notifications": {n.notify_id: n.to_json() for n in self.notices.values()},
            }

    # -- helpers ----------------------------------------------------------------

    def _trade(
        self, trade_no: str | None, out_trade_no: str | None
    ) -> OpenTrade | Literal["mismatch"] | None:
        by_number = self.trades.get(trade_no) if trade_no else None
        by_out = (
            next((t for t in self.trades.values() if t.out_trade_no == out_trade_no), None)
            if out_trade_no
            else None
        )
        if trade_no and out_trade_no:
            if by_number is None and by_out is None:
                return None
            return by_number if by_number is by_out else "mismatch"
        return by_number or by_out

    def _new_trade_no(self, today: str) -> str:
        while True:
            number = f"{today}2200{secrets.randbelow(10**16):016d}"
            if number not in self.trades:
                return number

    def _refuse(self, sub_code: str, sub_msg: str) -> Refused:
        self.refused[sub_code] += 1
        return Refused(sub_code, sub_msg)
