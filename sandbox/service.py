"""The sandbox gateway's behaviour, independent of HTTP serving.

`SandboxService` ties the pieces together: the stateless checks
(`validation`), the books and their journal (`bookkeeper`), the faults, the
clock, batch acceptance (`acceptance`), and the notifications (`outbox`,
sent by `notifier`). The WSGI layer (`app`) turns HTTP into calls of
`gateway` and the control methods (`control`), and turns the returned
`Answer` into HTTP (including the delays and resets faults ask for). The
refund query (`refund_fastpay_query`) is answered by `query.QueryDesk` from
a copy of the books; it changes nothing.

A refund request that passed the checks meets the gateway faults in this
order: `http_5xx`, `hang` and `garbage` (each either before the batch is
taken, or, with `accept`, after), then acceptance, then
`reset_after_accept`, the late `garbage` / `http_5xx` / `hang` answers, and
`slow`. The OpenAPI gateway (`/openapi/gateway.do`) is `openapi.gateway.OpenApiGateway`,
with books, key pair and coupon notifier of its own, sharing the clock, the
fault book (its `openapi` scope) and the settings.

`notify_verify` answers `true` for a genuine notify_id that is not
yet acknowledged and was attempted recently enough, else `false`; `invalid`
for a partner the sandbox does not serve, or a notify_id sent for another
partner (`outbox.Outbox.verify`).

Every request is checked against, and booked for, the partner it names:
its keys, its batch numbers, its notifications, its query answers.

The password service `refund_fastpay_by_platform_pwd` comes from a browser:
it passes the same checks, but is answered with HTML by `cashier.Cashier`
(the password page, or the error page of a refusal) and is executed only
when the operator confirms the payment password, through the same
acceptance (`_accept`) as the password-free service. The gateway faults
that shape a synchronous answer (`http_5xx`, `hang`, `garbage`,
`reset_after_accept`, `slow`) apply to the password-free service only; those
of acceptance (`lock_error`, `sync_item_failure`, items, result shapes) and
of notifications apply to both.
"""

from __future__ import annotations

import time

import structlog

from sandbox.acceptance import BatchDesk
from sandbox.answers import (
    HTML_TYPE,
    TEXT_TYPE,
    XML_TYPE,
    Answer,
    error_page,
    garbage_body,
)
from sandbox.bookkeeper import Bookkeeper
from sandbox.cashier import Cashier
from sandbox.clock import SandboxClock
from sandbox.config import SandboxConfig
from sandbox.control import ControlAPI
from sandbox.faults import Fault, FaultBook, log_injected
from sandbox.keys import AlipayKeys, ensure_openapi_keys
from sandbox.notifier import Notifier
from sandbox.openapi.control import OPENAPI_SETTINGS
from sandbox.openapi.gateway import OpenApiGateway
from sandbox.outbox import Outbox
from sandbox.protocol import sync_answer
from sandbox.query import QUERY_SERVICE, QueryDesk, RefundQuery, refusal_answer
from sandbox.records import BatchRecord, ExternalRefundRecord, RequestRecord
from sandbox.validation import (
    PWD_SERVICE,
    GatewayContext,
    NotifyVerifyQuery,
    RefundRequest,
    Refusal,
    check_gateway_request,
)

__all__ = ["Answer", "SandboxService"]

log = structlog.get_logger(__name__)


class SandboxService(ControlAPI):
    """The emulated gateway (see the module docstring); the control API is `ControlAPI`'s."""

    def __init__(self, config: SandboxConfig, keys: AlipayKeys) -> None:
        self.config = config
        self._keys = keys
        self.books = Bookkeeper(config.state_dir, default_partner=config.partner)
        ledger = self.books.ledger
        self.clock = SandboxClock(ledger.clock_offset)
        self.faults = FaultBook(config.faults, seed=config.seed)
        self.outbox = Outbox(config, keys, self.books, self.clock, self.faults)
        self.notifier = Notifier(self.outbox, senders=config.senders, timeout=config.notify_timeout)
        self.batches = BatchDesk(config, self.books, self.clock, self.faults)
        self.refund_limit_mode = config.refund_limit_mode
        self.notify_verify_seconds = config.notify_verify_seconds
        self.queries = QueryDesk(self.faults, self._query_records)
        self._partners = {p.partner: p for p in config.partners}
        self.payment_password = config.payment_password
        self.cashier = Cashier(
            self.books, self.clock, accept=self._accept, password_for=self._payment_password
        )
        self._openapi_keys = ensure_openapi_keys(config.state_dir)
        self.openapi_settings = {name: values[0] for name, values in OPENAPI_SETTINGS.items()}
        self.openapi = OpenApiGateway(
            config,
            self._openapi_keys.private_pem,
            self.clock,
            self.faults,
            lambda: self.openapi_settings,
        )
        log.info(
            "sandbox.state.loaded",
            journal=str(self.books.journal.path),
            records=self.books.replayed,
            batches=len(ledger.batches),
            trades=len(ledger.trades),
            pending_notifications=len(ledger.pending_notifications()),
        )

    # -- lifecycle ------------------------------------------------------------

    def start(self) -> None:
        """Start the senders and resume the notifications a previous run left pending."""
        self.notifier.start()
        self.openapi.notifier.start()
        for notify_id, delay in self.outbox.resume():
            self.notifier.schedule(notify_id, delay)

    def stop(self) -> None:
        self.notifier.stop()
        self.openapi.notifier.stop()
        self.books.close()

    # -- the gateway ----------------------------------------------------------

    def gateway(self, query: bytes, body: bytes, content_type: str) -> Answer:
        """Answer one `/gateway.do` request (refund or notify_verify)."""
        ctx = GatewayContext(self._partners, today=self.clock.today())
        verdict = check_gateway_request(query, body, content_type, ctx)
        if isinstance(verdict, NotifyVerifyQuery):
            return self.notify_verify(verdict)
        if isinstance(verdict, RefundQuery):
            return self.queries.answer(verdict)
        if isinstance(verdict, Refusal) and verdict.service == QUERY_SERVICE:
            log.info(
                "sandbox.query.refused",
                partner=verdict.partner,
                code=verdict.code,
                reason=verdict.reason,
            )
            body, content_type = refusal_answer(verdict.code, verdict.charset)
            return Answer(200, body, content_type)
        if isinstance(verdict, Refusal):
            self._refuse(
                verdict.service, verdict.batch_no, verdict.code, verdict.reason, verdict.partner
            )
            if verdict.service == PWD_SERVICE:
                return self.cashier.refused(verdict)
            return Answer(200, sync_answer(verdict.code), XML_TYPE)
        if verdict.service == PWD_SERVICE:
            return self.cashier.open(verdict)
        return self._refund(verdict)

    def openapi_gateway(self, query: bytes, body: bytes, content_type: str) -> Answer:
        """Answer one `POST /openapi/gateway.do` (`sandbox.openapi.gateway`)."""
        return self.openapi.answer(query, body, content_type)

    def cashier_confirm(self, body: bytes, content_type: str) -> Answer:
        """Answer `POST /cashier/confirm`: the operator typed the payment password."""
        return self.cashier.confirm(body, content_type)

    def _accept(self, request: RefundRequest) -> str | None:
        """Take a checked batch into the books and schedule its notification; the refusal code.

        The one acceptance of both refund services (the password service's
        runs when the operator confirmed on the cashier page).
        """
        code, note_id = self.batches.accept(request, limit_mode=self.refund_limit_mode)
        if code is None and note_id is not None:
            delay = self.config.process_delay * self.config.time_factor
            self.notifier.schedule(note_id, delay)
        return code

    def _payment_password(self, partner: str) -> str:
        own = self._partners[partner].payment_password
        return own if own is not None else self.payment_password

    def _refund(self, request: RefundRequest) -> Answer:
        batch_no = request.batch_no
        late_5xx: Fault | None = None
        late_hang: Fault | None = None
        fault = self.faults.draw("http_5xx")
        if fault is not None:
            log_injected("http_5xx", batch_no)
            if not fault.option("accept"):
                self._refuse(
                    request.service, batch_no, "fault:http_5xx", "injected 5xx", request.partner
                )
                return Answer(
                    int(fault.option("status")), error_page(fault.option("status")), HTML_TYPE
                )
            late_5xx = fault
        fault = self.faults.draw("hang")
        if fault is not None:
            log_injected("hang", batch_no)
            if not fault.option("accept"):
                self._refuse(
                    request.service, batch_no, "fault:hang", "injected hang", request.partner
                )
                return Answer(504, error_page(504), HTML_TYPE, delay=float(fault.option("seconds")))
            late_hang = fault
        garbage = self.faults.draw("garbage")
        if garbage is not None:
            log_injected("garbage", batch_no)
            if not garbage.option("accept"):
                self._refuse(
                    request.service, batch_no, "fault:garbage", "injected garbage", request.partner
                )
                return self._garbage("refund", garbage)

        code = self._accept(request)
        if code is not None:
            return Answer(200, sync_answer(code), XML_TYPE)

        if self.faults.draw("reset_after_accept") is not None:
            log_injected("reset_after_accept", batch_no)
            return Answer(200, b"", XML_TYPE, reset=True)
        if garbage is not None:
            return self._garbage("refund", garbage)
        if late_5xx is not None:
            status = int(late_5xx.option("status"))
            return Answer(status, error_page(status), HTML_TYPE)
        if late_hang is not None:
            return Answer(
                200, sync_answer(None), XML_TYPE, delay=float(late_hang.option("seconds"))
            )
        slow = self.faults.draw("slow")
        if slow is not None:
            log_injected("slow", batch_no)
            return Answer(200, sync_answer(None), XML_TYPE, delay=float(slow.option("seconds")))
        return Answer(200, sync_answer(None), XML_TYPE)

    def _garbage(self, service: str, fault: Fault) -> Answer:
        kind = str(fault.option("body"))
        if kind == "any":
            kind = self.faults.choice(("html", "truncated"))
        body, content_type = garbage_body(service, kind)
        return Answer(200, body, content_type)

    def _query_records(
        self, partner: str, batch_no: str | None
    ) -> list[BatchRecord | ExternalRefundRecord]:
        with self.books.lock:
            return self.books.ledger.query_records(batch_no, partner=partner)

    def notify_verify(self, query: NotifyVerifyQuery) -> Answer:
        """`true`: genuine, unacknowledged, unexpired; `false`: else; `invalid`: wrong partner.

        A wrong partner: one the sandbox does not serve, or not the one the
        notify_id was sent for.
        """
        fault = self.faults.draw("http_5xx", service="notify_verify")
        if fault is not None:
            log_injected("http_5xx", None, service="notify_verify")
            status = int(fault.option("status"))
            return Answer(status, error_page(status), HTML_TYPE)
        fault = self.faults.draw("garbage", service="notify_verify")
        if fault is not None:
            log_injected("garbage", None, service="notify_verify")
            return self._garbage("notify_verify", fault)
        delay = 0.0
        for name in ("hang", "slow"):
            fault = self.faults.draw(name, service="notify_verify")
            if fault is not None:
                log_injected(name, None, service="notify_verify")
                delay = float(fault.option("seconds"))
                break
        if query.partner is None or query.partner not in self._partners:
            answer = "invalid"
        else:
            answer = self.outbox.verify(
                query.notify_id or "", query.partner, self.notify_verify_seconds
            )
        log.info(
            "sandbox.notify_verify",
            partner=query.partner if query.partner in self._partners else None,
            notify_id=query.notify_id,
            answer=answer,
        )
        return Answer(200, answer.encode("ascii"), TEXT_TYPE, delay=delay)

    # -- helpers ----------------------------------------------------------------

    def _refuse(
        self,
        service: str | None,
        batch_no: str | None,
        code: str,
        reason: str,
        partner: str | None = None,
    ) -> None:
        record = RequestRecord(
            ts=time.time(),
            at=self._at(),
            service=service,
            batch_no=batch_no,
            code=code,
            partner=partner,
        )
        self.books.refuse(record, reason)
