"""The OpenAPI gateway's behaviour: one call in, one `sandbox.answers.Answer` out.

`OpenApiGateway.answer` checks the call (`checks`), meets the faults of the
`openapi` scope (`fault_names`), does what the method says in the books
(`books`) and writes the signed answer (`writer`, varied shapes when the
setting `openapi_answer_shapes` is `vary`).

Faults, in order, for a refund call: `http_5xx`, `hang`, `unknown_error`
(each before the refund is made, or with `accept` after), then the refund,
then `reset_after_accept`, the late `http_5xx` / `unknown_error` / `hang`
answers, and `slow`. A query meets `http_5xx`, `unknown_error`, `hang` and
`slow` when their `service` is `query` or `any` (it changes nothing, so
`accept` does not matter). Gateway-level errors (`checks`) meet no fault.

A coupon refund answers `status` `SUCCESS`, or `INIT` when the setting
`openapi_coupon_status` is `INIT` or the fault `coupon_init` fires: the
operation then turns `SUCCESS` after the processing delay (scaled by the time
factor). Either way its notification (when the call had a `notify_url`) is
first delivered after that delay.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from decimal import Decimal

import structlog

from sandbox.answers import HTML_TYPE, Answer, error_page
from sandbox.clock import SandboxClock
from sandbox.config import SandboxConfig
from sandbox.faults import Fault, FaultBook, log_injected
from sandbox.notifier import Notifier
from sandbox.openapi.books import OpenApiBooks
from sandbox.openapi.checks import GatewayError, OpenApiCall, check_call
from sandbox.openapi.fault_names import PREFIX
from sandbox.openapi.notices import CouponOutbox
from sandbox.openapi.records import CouponOperation, Refused
from sandbox.openapi.writer import PLAIN, Shape, shape_from, write_answer
from sandbox.protocol import new_notify_id
from worker.mapi import BEIJING, format_amount, refund_date
from worker.openapi import COUPON_QUERY, COUPON_REFUND, TRADE_REFUND, member_name

__all__ = ["JSON_TYPE", "OpenApiGateway"]

log = structlog.get_logger(__name__)

JSON_TYPE = "application/json; charset=utf-8"
_SUCCESS = {"code": "10000", "msg": "Success"}
_UNKNOWN = {
    "code": "20000",
    "msg": "Service Currently Unavailable",
    "sub_code": "isp.unknow-error",
    "sub_msg": "系统繁忙",
}
_REFUNDS = (TRADE_REFUND, COUPON_REFUND)


class OpenApiGateway:
    """The emulated OpenAPI gateway (see the module docstring)."""

    def __init__(
        self,
        config: SandboxConfig,
        private_key_pem: bytes,
        clock: SandboxClock,
        faults: FaultBook,
        settings: Callable[[], Mapping[str, str]],
    ) -> None:
        self._config = config
        self._key = private_key_pem
        self._clock = clock
        self._faults = faults
        self._settings = settings
        self.books = OpenApiBooks()
        self.outbox = CouponOutbox(
            self.books, private_key_pem, clock, faults, time_factor=config.time_factor
        )
        self.notifier = Notifier(self.outbox, senders=config.senders, timeout=config.notify_timeout)
        self._apps = {
            p.app_id: p.app_public_key for p in config.partners if p.app_id and p.app_public_key
        }

    def answer(self, query: bytes, body: bytes, content_type: str) -> Answer:
        """Answer one `POST /openapi/gateway.do`."""
        verdict = check_call(query, body, content_type, self._apps)
        if isinstance(verdict, GatewayError):
            log.info(
                "sandbox.openapi.refused",
                app_id=verdict.app_id if verdict.signed else None,
                method=verdict.method,
                code=verdict.code,
                sub_code=verdict.sub_code,
                reason=verdict.sub_msg,
            )
            member = {
                "code": verdict.code,
                "msg": verdict.msg,
                "sub_code": verdict.sub_code,
                "sub_msg": verdict.sub_msg,
            }
            return self._json("error_response", member, signed=verdict.signed)
        if verdict.method in _REFUNDS:
            return self._refund(verdict)
        return self._query(verdict)

    # -- the methods ------------------------------------------------------------

    def _refund(self, call: OpenApiCall) -> Answer:
        late: dict[str, Fault] = {}
        for name in ("http_5xx", "hang", "unknown_error"):
            fault = self._draw(name, call, "refund")
            if fault is None:
                continue
            if not fault.option("accept"):
                if name == "http_5xx":
                    status = int(fault.option("status"))
                    return Answer(status, error_page(status), HTML_TYPE)
                if name == "hang":
                    seconds = float(fault.option("seconds"))
                    return Answer(504, error_page(504), HTML_TYPE, delay=seconds)
                return self._json(member_name(call.method), _UNKNOWN)
            late[name] = fault
        member = self._trade_refund(call) if call.method == TRADE_REFUND else self._coupon(call)
        if self._draw("reset_after_accept", call, "refund") is not None:
            return Answer(200, b"", JSON_TYPE, reset=True)
        if "http_5xx" in late:
            status = int(late["http_5xx"].option("status"))
            return Answer(status, error_page(status), HTML_TYPE)
        if "unknown_error" in late:
            return self._json(member_name(call.method), _UNKNOWN)
        delay = float(late["hang"].option("seconds")) if "hang" in late else 0.0
        slow = self._draw("slow", call, "refund") if not delay else None
        if slow is not None:
            delay = float(slow.option("seconds"))
        return self._json(member_name(call.method), member, delay=delay)

    def _query(self, call: OpenApiCall) -> Answer:
        name = member_name(call.method)
        if (fault := self._draw("http_5xx", call, "query")) is not None:
            status = int(fault.option("status"))
            return Answer(status, error_page(status), HTML_TYPE)
        if self._draw("unknown_error", call, "query") is not None:
            return self._json(name, _UNKNOWN)
        delay = 0.0
        for fault_name in ("hang", "slow"):
            if (fault := self._draw(fault_name, call, "query")) is not None:
                delay = float(fault.option("seconds"))
                break
        fields = call.fields
        if call.method == COUPON_QUERY:
            found = self.books.coupon_query(
                auth_no=fields["auth_no"], out_request_no=fields["out_request_no"]
            )
            member = _refused(found) if isinstance(found, Refused) else self._operation(found)
        else:
            got = self.books.refund_query(
                trade_no=fields.get("trade_no"),
                out_trade_no=fields.get("out_trade_no"),
                out_request_no=fields["out_request_no"],
            )
            if isinstance(got, Refused):
                member = _refused(got)
            else:
                trade, refund = got
                member = {
                    **_SUCCESS,
                    "trade_no": trade.trade_no,
                    "out_trade_no": trade.out_trade_no,
                    "total_amount": format_amount(trade.paid),
                }
                if refund is not None:
                    member["out_request_no"] = refund.out_request_no
                    member["refund_amount"] = format_amount(refund.amount)
                    member["refund_status"] = "REFUND_SUCCESS"
                    member["gmt_refund_pay"] = refund.gmt_refund_pay
        log.info(
            "sandbox.openapi.query",
            app_id=call.app_id,
            method=call.method,
            out_request_no=fields["out_request_no"],
            code=member["code"],
            sub_code=member.get("sub_code"),
        )
        return self._json(name, member, delay=delay)

    def _trade_refund(self, call: OpenApiCall) -> dict[str, str]:
        fields = call.fields
        assert call.amount is not None
        done = self.books.trade_refund(
            trade_no=fields.get("trade_no"),
            out_trade_no=fields.get("out_trade_no"),
            out_request_no=fields["out_request_no"],
            amount=call.amount,
            gmt=refund_date(self._clock.now()),
            today=self._today(),
            app_id=call.app_id,
            auto_amount=self._auto_amount(),
        )
        if isinstance(done, Refused):
            self._log_refund(call, None, done.sub_code)
            return _refused(done)
        refund, made, trade = done
        self._log_refund(call, trade.trade_no, None, made=made)
        return {
            **_SUCCESS,
            "trade_no": trade.trade_no,
            "out_trade_no": trade.out_trade_no,
            "fund_change": "Y" if made else "N",
            "refund_fee": format_amount(trade.refunded),
            "gmt_refund_pay": refund.gmt_refund_pay,
        }

    def _coupon(self, call: OpenApiCall) -> dict[str, str]:
        fields = call.fields
        assert call.amount is not None
        delay = self._config.process_delay * self._config.time_factor
        later = self._settings().get("openapi_coupon_status") == "INIT"
        if self._draw("coupon_init", call, "refund") is not None:
            later = True
        now = time.time()
        done = self.books.coupon_refund(
            auth_no=fields["auth_no"],
            out_request_no=fields["out_request_no"],
            amount=call.amount,
            gmt=refund_date(self._clock.now()),
            today=self._today(),
            settle_ts=now + delay if later else now,
            app_id=call.app_id,
            notify_url=call.notify_url,
            notify_id=new_notify_id() if call.notify_url else None,
            auto_amount=self._auto_amount(),
        )
        if isinstance(done, Refused):
            self._log_refund(call, fields["auth_no"], done.sub_code)
            return _refused(done)
        operation, made = done
        self._log_refund(call, operation.auth_no, None, made=made)
        if made and operation.notify_id is not None:
            self.notifier.schedule(operation.notify_id, self.outbox.delay_after(delay))
        # The answer of the call that made it says how it stood then, however short the wait.
        member = self._operation(operation, "INIT" if made and later else None)
        member.pop("gmt_create", None)
        return member

    # -- helpers ----------------------------------------------------------------

    def _operation(self, operation: CouponOperation, status: str | None = None) -> dict[str, str]:
        status = status or operation.status(time.time())
        member = {
            **_SUCCESS,
            "auth_no": operation.auth_no,
            "out_request_no": operation.out_request_no,
            "operation_id": operation.operation_id,
            "amount": format_amount(operation.amount),
            "status": status,
            "gmt_create": operation.gmt_trans,
        }
        if status == "SUCCESS":
            member["gmt_trans"] = operation.gmt_trans
        return member

    def _json(
        self, name: str, member: Mapping[str, str], *, signed: bool = True, delay: float = 0.0
    ) -> Answer:
        body = write_answer(name, member, self._key, self._shape(), signed=signed)
        return Answer(200, body, JSON_TYPE, delay=delay)

    def _shape(self) -> Shape:
        if self._settings().get("openapi_answer_shapes") != "vary":
            return PLAIN
        return shape_from(self._faults.randbits(64))

    def _draw(self, name: str, call: OpenApiCall, service: str) -> Fault | None:
        fault = self._faults.draw(PREFIX + name, service=service)
        if fault is not None:
            log_injected(PREFIX + name, None, service=call.method)
        return fault

    def _auto_amount(self) -> Decimal | None:
        return self._config.auto_trade_amount if self._config.auto_trades else None

    def _today(self) -> str:
        return self._clock.now().astimezone(BEIJING).strftime("%Y%m%d")

    def _log_refund(
        self, call: OpenApiCall, number: str | None, sub_code: str | None, *, made: bool = False
    ) -> None:
        log.info(
            "sandbox.openapi.refund",
            app_id=call.app_id,
            method=call.method,
            number=number,
            out_request_no=call.fields["out_request_no"],
            amount=format_amount(call.amount) if call.amount is not None else None,
            made=made,
            sub_code=sub_code,
        )


def _refused(refused: Refused) -> dict[str, str]:
    return {
        "code": "40004",
        "msg": "Business Failed",
        "sub_code": refused.sub_code,
        "sub_msg": refused.sub_msg,
    }
