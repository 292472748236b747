"""The password refund service's cashier: the pages an operator's browser goes through.

`refund_fastpay_by_platform_pwd` arrives from a browser (the merchant's
auto-submitting form). Once it passed every check of `sandbox.validation`
(the same ones as the password-free service, plus the seller and
`notify_url`), `Cashier.open` answers the password page (`sandbox.pages`)
and keeps the parsed request under a fresh single-use ticket
(`sandbox.tickets`); nothing is booked yet. A request already refused is
shown as the error page (`Cashier.refused`), HTTP 200 like Alipay's, the code
in `id="error-code"`.

`POST /cashier/confirm` (`Cashier.confirm`, form fields `ticket`, `account`,
`payment_password`, in the page's charset):

* the seller's account (its login or user id, `sandbox.seller.Seller.accepts`)
  and the payment password right: the batch is executed by `accept`, the
  very acceptance of the password-free service (same books, item rules,
  faults, and the same `batch_refund_notify` to `notify_url`), and the result
  page says 退款申请已受理 with the batch_no (200); if acceptance refuses it
  (DUPLICATE_BATCH_NO, the `lock_error` fault...), the error page (200);
* either wrong: the same page again with `id="error"` (200); the ticket stays
  valid; the 5th wrong try spends it (PAYMENT_PASSWORD_LOCKED, booked as a
  refused request of the batch, 200);
* an empty account or password: the page again, no try counted;
* a ticket that is not open: TICKET_USED or PAYMENT_PASSWORD_LOCKED (410),
  TICKET_NOT_FOUND (404: never made, expired after 30 minutes, or made before
  a restart);
* no well-formed ticket, fields missing or repeated, bytes not valid in the
  charset: ILLEGAL_ARGUMENT (400).

The payment password is the partner's `payment_password` (partners file),
else the sandbox's (`--payment-password`, `PUT /_sandbox/settings`), default
`sandbox-pay-123456`; it is compared in constant time and never logged.
Every page is served `text/html; charset=<request charset>` with
`Cache-Control: no-store`. Codes: Alipay's where one exists (docs/mapi.md,
"The password variant"), else the cashier's own (`sandbox.pages.CASHIER_CODES`).
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable
from typing import Final
from urllib.parse import unquote_to_bytes

import structlog

from sandbox.answers import Answer
from sandbox.bookkeeper import Bookkeeper
from sandbox.clock import SandboxClock
from sandbox.pages import Notice, PayPage, error_page, html_type, pay_page, result_page
from sandbox.records import RequestRecord
from sandbox.tickets import TicketBook, TicketState, looks_like_ticket
from sandbox.validation import PWD_SERVICE, RefundRequest, Refusal
from worker.domain.errors import NotifyFormatError
from worker.mapi import decode_form

__all__ = ["CONFIRM_PATH", "Cashier"]

log = structlog.get_logger(__name__)

CONFIRM_PATH: Final = "/cashier/confirm"
_NO_STORE: Final = (("Cache-Control", "no-store"),)
_FORM_TYPES: Final = ("", "application/x-www-form-urlencoded")

_WRONG_PASSWORD: Final = Notice("支付密码不正确", "payment password incorrect")
_WRONG_ACCOUNT: Final = Notice("账户名不是退款卖家的账户", "the account is not the seller's")
_EMPTY: Final = Notice("请输入账户名和支付密码", "enter the account and the payment password")
_SPENT_STATUS: Final = {
    TicketState.USED: ("TICKET_USED", 410),
    TicketState.LOCKED: ("PAYMENT_PASSWORD_LOCKED", 410),
    TicketState.UNKNOWN: ("TICKET_NOT_FOUND", 404),
}


class Cashier:
    """The password pages and their tickets (see the module docstring).

    `accept(request)` executes a batch as the password-free service does and
    returns its refusal code or None; `password_for(partner)` is the payment
    password the partner's cashier wants now.
    """

    def __init__(
        self,
        books: Bookkeeper,
        clock: SandboxClock,
        *,
        accept: Callable[[RefundRequest], str | None],
        password_for: Callable[[str], str],
        tickets: TicketBook[RefundRequest] | None = None,
    ) -> None:
        self._books = books
        self._clock = clock
        self._accept = accept
        self._password_for = password_for
        self.tickets: TicketBook[RefundRequest] = tickets or TicketBook()

    def refused(self, refusal: Refusal) -> Answer:
        """The error page of a password request the checks refused (already booked)."""
        return _page(
            200,
            error_page(refusal.code, charset=refusal.charset or "utf-8", detail=refusal.reason),
            refusal.charset or "utf-8",
        )

    def open(self, request: RefundRequest) -> Answer:
        """The password page of a checked request, or DUPLICATE_BATCH_NO's error page."""
        bound = log.bind(partner=request.partner, batch_no=request.batch_no)
        if request.ignored:
            bound.info("sandbox.cashier.params_ignored", params=list(request.ignored))
        with self._books.lock:
            duplicate = self._books.ledger.is_accepted(request.batch_no, partner=request.partner)
            if duplicate:
                self._refuse_locked(request, "DUPLICATE_BATCH_NO", "batch_no was accepted before")
        if duplicate:
            return self._error(request, "DUPLICATE_BATCH_NO", "batch_no was accepted before")
        ticket = self.tickets.open(request)
        bound.info(
            "sandbox.cashier.opened",
            items=len(request.rows),
            seller_named_by=request.seller.named_by if request.seller else None,
        )
        return _page(200, pay_page(self._view(request, ticket)), request.charset)

    def confirm(self, body: bytes, content_type: str) -> Answer:
        """Answer one `POST /cashier/confirm` (module docstring)."""
        media_type = content_type.split(";", 1)[0].strip().lower()
        ticket = _raw_ticket(body) if media_type in _FORM_TYPES else None
        if ticket is None:
            return self._bad(None, "ticket is missing or malformed")
        state, request = self.tickets.look(ticket)
        if request is None:
            code, status = _SPENT_STATUS.get(state, _SPENT_STATUS[TicketState.UNKNOWN])
            log.info("sandbox.cashier.ticket_refused", state=str(state), code=code)
            return _page(status, error_page(code, detail=_SPENT_DETAIL[code]), "utf-8")
        try:
            form = decode_form(body, request.charset)
        except NotifyFormatError:
            return self._bad(request, f"the form is not valid {request.charset} or repeats a field")
        account, password = form.get("account"), form.get("payment_password")
        if account is None or password is None:
            return self._bad(request, "account and payment_password are required fields")
        bound = log.bind(partner=request.partner, batch_no=request.batch_no)
        if not account.strip() or not password:
            return self._again(request, ticket, _EMPTY, account, None)
        seller = request.seller
        account_ok = seller is not None and seller.accepts(account)
        expected = self._password_for(request.partner).encode("utf-8")
        password_ok = hmac.compare_digest(password.encode("utf-8"), expected)
        if not (account_ok and password_ok):
            left = self.tickets.wrong(ticket)
            wrong = "account" if not account_ok else "password"
            bound.info("sandbox.cashier.wrong", wrong=wrong, tries_left=left)
            if left == 0:
                record = _request_record(request, "PAYMENT_PASSWORD_LOCKED", self._at())
                self._books.refuse(record, "too many wrong tries")
                return self._error(request, "PAYMENT_PASSWORD_LOCKED", "too many wrong tries")
            notice = _WRONG_ACCOUNT if not account_ok else _WRONG_PASSWORD
            return self._again(request, ticket, notice, account, left)
        if self.tickets.use(ticket) is None:  # another confirmation of it got there first
            return _page(410, error_page("TICKET_USED"), request.charset)
        refused = self._accept(request)
        if refused is not None:
            bound.info("sandbox.cashier.refused", code=refused)
            return self._error(request, refused, "refused when the batch was executed")
        bound.info("sandbox.cashier.confirmed", items=len(request.rows))
        page = result_page(
            request.charset,
            batch_no=request.batch_no,
            seller=seller.shown if seller else request.partner,
            items=request.rows,
        )
        return _page(200, page, request.charset)

    # -- helpers ----------------------------------------------------------------

    def _view(self, request: RefundRequest, ticket: str) -> PayPage:
        return PayPage(
            charset=request.charset,
            batch_no=request.batch_no,
            refund_date=request.refund_date,
            seller=request.seller.shown if request.seller else request.partner,
            items=request.rows,
            ticket=ticket,
            confirm_path=CONFIRM_PATH,
        )

    def _again(
        self,
        request: RefundRequest,
        ticket: str,
        notice: Notice,
        account: str,
        tries_left: int | None,
    ) -> Answer:
        page = pay_page(
            self._view(request, ticket), error=notice, account=account, tries_left=tries_left
        )
        return _page(200, page, request.charset)

    def _error(self, request: RefundRequest, code: str, detail: str) -> Answer:
        page = error_page(code, charset=request.charset, detail=detail, batch_no=request.batch_no)
        return _page(200, page, request.charset)

    def _bad(self, request: RefundRequest | None, problem: str) -> Answer:
        log.info(
            "sandbox.cashier.bad_confirm",
            partner=request.partner if request else None,
            batch_no=request.batch_no if request else None,
            problem=problem,
        )
        charset = request.charset if request else "utf-8"
        return _page(400, error_page("ILLEGAL_ARGUMENT", charset=charset, detail=problem), charset)

    def _refuse_locked(self, request: RefundRequest, code: str, reason: str) -> None:
        self._books.refuse_locked(_request_record(request, code, self._at()), reason)

    def _at(self) -> str:
        return self._clock.stamp()


_SPENT_DETAIL: Final = {
    "TICKET_USED": "the ticket was used",
    "PAYMENT_PASSWORD_LOCKED": "the ticket was spent by wrong tries",
    "TICKET_NOT_FOUND": "no such ticket",
}


def _request_record(request: RefundRequest, code: str, at: str) -> RequestRecord:
    return RequestRecord(
        ts=time.time(),
        at=at,
        service=PWD_SERVICE,
        batch_no=request.batch_no,
        code=code,
        item_count=len(request.rows),
        partner=request.partner,
    )


def _raw_ticket(body: bytes) -> str | None:
    """The `ticket` field of a form body when it is there once and well formed, else None."""
    values = [
        value
        for key, _, value in (part.partition(b"=") for part in body.split(b"&"))
        if key == b"ticket"
    ]
    if len(values) != 1:
        return None
    text = unquote_to_bytes(values[0]).decode("ascii", "replace")
    return text if looks_like_ticket(text) else None


def _page(status: int, body: bytes, charset: str) -> Answer:
    return Answer(status, body, html_type(charset), headers=_NO_STORE)
