"""The coupon refund notifications: the `Deliveries` that `sandbox.notifier` sends.

A coupon refund made with a `notify_url` gets one notification, delivered by
its own `sandbox.notifier.Notifier` (the same queue, sender threads, HTTP
posting and acknowledgement rule as `batch_refund_notify`) on the same resend
schedule (`sandbox.protocol.resend_delay`) until the answer is `success`.

The form (`prepare`, made afresh for each delivery: the same `notify_id` and
content, a new `notify_time` and signature): `notify_type`
(`fund_stdtrustee_refund.success`), `notify_id`, `notify_time`, `auth_no`,
`out_order_no` (empty: the sandbox has no merchant order number for an
envelope; an empty value is signed like any other), `out_request_no`,
`operation_id`, `operation_type` (`REFUND`), `amount`, `status` (`SUCCESS`),
`gmt_trans`, `sign_type` (`RSA2`) and `sign`: SHA256withRSA with the sandbox's
OpenAPI key over every parameter but `sign` and `sign_type`, sorted, empty
values kept (`worker.openapi.notification_signing_string`).

The delivery faults are the `openapi` scope's (`sandbox.openapi.fault_names`):
`notify_lost`, `notify_duplicate`, `notify_reorder`, `notify_bad_sign` (a copy
signed by no key, posted first) are drawn by the notifier; `notify_slow` adds
its seconds to the wait before the next attempt (`delay_after`).
"""

from __future__ import annotations

import base64
import os

import structlog

from sandbox.clock import SandboxClock
from sandbox.faults import Fault, FaultBook, log_injected
from sandbox.notifier import Delivery, Outcome
from sandbox.openapi.books import OpenApiBooks
from sandbox.openapi.fault_names import PREFIX
from sandbox.protocol import notify_time, resend_delay
from worker.mapi import encode_form, format_amount
from worker.openapi import COUPON_NOTIFY_TYPE, notification_signing_string, sign_content

__all__ = ["CouponOutbox"]

log = structlog.get_logger(__name__)

_CONTENT_TYPE = "application/x-www-form-urlencoded; charset=utf-8"


class CouponOutbox:
    """Builds and records coupon notification deliveries (see the module docstring)."""

    def __init__(
        self,
        books: OpenApiBooks,
        private_key_pem: bytes,
        clock: SandboxClock,
        faults: FaultBook,
        *,
        time_factor: float,
    ) -> None:
        self._books = books
        self._key = private_key_pem
        self._clock = clock
        self._faults = faults
        self._factor = time_factor

    def delay_after(self, delay: float) -> float:
        """`delay`, plus the seconds of `notify_slow` when it fires for this attempt."""
        fault = self.draw("notify_slow")
        return delay + (float(fault.option("seconds")) if fault is not None else 0.0)

    # -- Deliveries -------------------------------------------------------------

    def prepare(self, notify_id: str, *, forged: bool) -> Delivery | None:
        with self._books.lock:
            notice = self._books.notices.get(notify_id)
            if notice is None or not notice.pending:
                return None
            operation = self._books.operations[(notice.auth_no, notice.out_request_no)]
            url = notice.url
        form = {
            "notify_type": COUPON_NOTIFY_TYPE,
            "notify_id": notify_id,
            "notify_time": notify_time(self._clock.now()),
            "auth_no": operation.auth_no,
            "out_order_no": "",
            "out_request_no": operation.out_request_no,
            "operation_id": operation.operation_id,
            "operation_type": "REFUND",
            "amount": format_amount(operation.amount),
            "status": "SUCCESS",
            "gmt_trans": operation.gmt_trans,
        }
        if forged:
            signature = base64.b64encode(os.urandom(256)).decode("ascii")
        else:
            signature = sign_content(notification_signing_string(form), self._key)
        form["sign_type"] = "RSA2"
        form["sign"] = signature
        return Delivery(url=url, body=encode_form(form, "utf-8"), content_type=_CONTENT_TYPE)

    def delivered(self, notify_id: str, kind: str, outcome: Outcome | None) -> float | None:
        with self._books.lock:
            notice = self._books.notices.get(notify_id)
            if notice is None:
                return None
            if kind == "forged":
                notice.forged_sends += 1
                return None
            if kind != "duplicate":
                notice.attempts += 1
            if outcome is None:
                notice.lost += 1
            else:
                notice.sends += 1
                notice.acknowledged = notice.acknowledged or outcome.acknowledged
            attempts, acknowledged = notice.attempts, notice.acknowledged
        if outcome is not None:
            log.info(
                "sandbox.openapi.notify.sent",
                notify_id=notify_id,
                kind=kind,
                attempt=attempts,
                status=outcome.status,
                acknowledged=outcome.acknowledged,
                error=outcome.error,
            )
        if acknowledged:
            return None
        delay = resend_delay(attempts, self._factor)
        if delay is None:
            with self._books.lock:
                notice.given_up = True
            log.warning("sandbox.openapi.notify.gave_up", notify_id=notify_id, attempts=attempts)
            return None
        return self.delay_after(delay)

    def draw(self, name: str) -> Fault | None:
        fault = self._faults.draw(PREFIX + name)
        if fault is not None:
            log_injected(PREFIX + name, None, service="coupon_notify")
        return fault
