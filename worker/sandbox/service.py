"""The sandbox gateway's behaviour, independent of HTTP serving.

`SandboxService` ties the pieces together: the stateless checks
(`validation`), the books (`ledger`) and their journal, the faults, the
clock and the notification sender. The WSGI layer (`app`) turns HTTP into
calls of `gateway`, `notify_verify` and the control methods, and turns the
returned `Answer` into HTTP (including the delays and resets faults ask for).

Concurrency: one lock serialises every change of the books. Accepting a
batch (duplicate check, plan, journal append, apply) happens under it, so a
`batch_no` is accepted at most once even when two requests race.
"""

from __future__ import annotations

import base64
import hashlib
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import structlog

from worker.errors import DetailDataError
from worker.mapi import (
    encode_form,
    format_amount,
    is_valid_trade_no,
    parse_amount,
    sign,
)
from worker.sandbox.clock import SandboxClock
from worker.sandbox.config import SandboxConfig
from worker.sandbox.faults import Fault, FaultBook, parse_fault_set
from worker.sandbox.journal import Journal
from worker.sandbox.keys import AlipayKeys
from worker.sandbox.ledger import (
    TRADE_STATUSES,
    BatchRecord,
    ClockRecord,
    GaveUpRecord,
    Ledger,
    Record,
    RequestRecord,
    SendRecord,
    TradeRecord,
    batch_columns,
)
from worker.sandbox.notifier import Delivery, Notifier, Outcome
from worker.sandbox.protocol import (
    NOTIFY_TYPE,
    SUCCESS,
    batch_results,
    format_result_details,
    new_notify_id,
    notify_time,
    resend_delay,
    sync_answer,
)
from worker.sandbox.validation import (
    GatewayContext,
    NotifyVerifyQuery,
    RefundRequest,
    Refusal,
    check_gateway_request,
)

__all__ = ["Answer", "SandboxService"]

log = structlog.get_logger(__name__)

XML_TYPE: Final = "text/xml; charset=GBK"
TEXT_TYPE: Final = "text/plain; charset=GBK"
HTML_TYPE: Final = "text/html; charset=utf-8"


@dataclass(frozen=True)
class Answer:
    """What to answer a gateway request: status, body, content type, and fault effects.

    `delay`: wait this long before answering. `reset`: answer nothing and
    reset the TCP connection instead.
    """

    status: int
    body: bytes
    content_type: str
    delay: float = 0.0
    reset: bool = False


def _error_page(status: int) -> bytes:
    return (
        f"<html><head><title>{status}</title></head>"
        f"<body><h1>{status}</h1><p>upstream error</p></body></html>"
    ).encode()


class SandboxService:
    """The emulated gateway (see the module docstring)."""

    def __init__(self, config: SandboxConfig, keys: AlipayKeys) -> None:
        self.config = config
        self._keys = keys
        self._lock = threading.Lock()
        self.ledger = Ledger()
        self.journal = Journal(config.state_dir)
        replayed = 0
        for record in self.journal.replay():
            self.ledger.apply(record)
            replayed += 1
        self.clock = SandboxClock(self.ledger.clock_offset)
        self.faults = FaultBook(config.faults, seed=config.seed)
        self.notifier = Notifier(self, senders=config.senders, timeout=config.notify_timeout)
        # notify_id -> (result_details, success_num), built once per notification.
        self._details: dict[str, tuple[str, int]] = {}
        log.info(
            "sandbox.state.loaded",
            journal=str(self.journal.path),
            records=replayed,
            batches=len(self.ledger.batches),
            trades=len(self.ledger.trades),
            pending_notifications=len(self.ledger.pending_notifications()),
        )

    # -- lifecycle ------------------------------------------------------------

    def start(self) -> None:
        """Start the senders and resume the notifications a previous run left pending."""
        self.notifier.start()
        now = time.time()
        factor = self.config.time_factor
        for note in self.ledger.pending_notifications():
            if note.attempts == 0:
                due = note.created_ts + self.config.process_delay * factor
            else:
                gap = resend_delay(note.attempts, factor)
                if gap is None:
                    self._record(GaveUpRecord(note.notify_id, now, self._at()))
                    continue
                due = (note.last_attempt_ts or now) + gap
            self.notifier.schedule(note.notify_id, max(0.0, due - now))

    def stop(self) -> None:
        self.notifier.stop()
        self.journal.close()

    # -- the gateway ----------------------------------------------------------

    def gateway(self, query: bytes, body: bytes, content_type: str) -> Answer:
        """Answer one `/gateway.do` request (refund or notify_verify)."""
        ctx = GatewayContext(
            partner=self.config.partner,
            md5_key=self.config.md5_key,
            merchant_public_key=self.config.merchant_public_key,
            today=self.clock.today(),
        )
        verdict = check_gateway_request(query, body, content_type, ctx)
        if isinstance(verdict, NotifyVerifyQuery):
            return self.notify_verify(verdict)
        if isinstance(verdict, Refusal):
            self._refuse(verdict.service, verdict.batch_no, verdict.code, verdict.reason)
            return Answer(200, sync_answer(verdict.code), XML_TYPE)
        return self._refund(verdict)

    def _refund(self, request: RefundRequest) -> Answer:
        batch_no = request.batch_no
        late_5xx: Fault | None = None
        late_hang: Fault | None = None
        fault = self.faults.draw("http_5xx")
        if fault is not None:
            self._fault_log("http_5xx", batch_no)
            if not fault.option("accept"):
                self._refuse(request.service, batch_no, "fault:http_5xx", "injected 5xx")
                return Answer(
                    int(fault.option("status")), _error_page(fault.option("status")), HTML_TYPE
                )
            late_5xx = fault
        fault = self.faults.draw("hang")
        if fault is not None:
            self._fault_log("hang", batch_no)
            if not fault.option("accept"):
                self._refuse(request.service, batch_no, "fault:hang", "injected hang")
                return Answer(
                    504, _error_page(504), HTML_TYPE, delay=float(fault.option("seconds"))
                )
            late_hang = fault

        code, note_id = self._accept(request)
        if code is not None:
            return Answer(200, sync_answer(code), XML_TYPE)
        if note_id is not None:
            delay = self.config.process_delay * self.config.time_factor
            self.notifier.schedule(note_id, delay)

        if self.faults.draw("reset_after_accept") is not None:
            self._fault_log("reset_after_accept", batch_no)
            return Answer(200, b"", XML_TYPE, reset=True)
        if late_5xx is not None:
            status = int(late_5xx.option("status"))
            return Answer(status, _error_page(status), HTML_TYPE)
        if late_hang is not None:
            return Answer(
                200, sync_answer(None), XML_TYPE, delay=float(late_hang.option("seconds"))
            )
        slow = self.faults.draw("slow")
        if slow is not None:
            self._fault_log("slow", batch_no)
            return Answer(200, sync_answer(None), XML_TYPE, delay=float(slow.option("seconds")))
        return Answer(200, sync_answer(None), XML_TYPE)

    def _accept(self, request: RefundRequest) -> tuple[str | None, str | None]:
        """Accept the batch or refuse it for state or fault reasons: (code, notify_id)."""
        batch_no = request.batch_no
        code: str | None
        with self._lock:
            if self.ledger.is_accepted(batch_no):
                code, reason = "DUPLICATE_BATCH_NO", "batch_no was accepted before"
            elif self.faults.draw("lock_error") is not None:
                code, reason = "BATCH_REFUND_LOCK_ERROR", "injected lock_error"
            else:
                code = self.faults.sync_item_failure(row[0] for row in request.rows)
                reason = "injected sync_item_failure"
            if code is not None:
                self._refuse_locked(request.service, batch_no, code, reason, len(request.rows))
                return code, None
            auto = self.config.auto_trade_amount if self.config.auto_trades else None
            planned = self.ledger.plan_items(
                request.rows,
                auto_amount=auto,
                item_fault=(
                    self.faults.item_failure if self.faults.active("item_failure") else None
                ),
            )
            notify_id = new_notify_id() if request.notify_url else None
            ts = time.time()
            record = BatchRecord(
                ts=ts,
                at=self._at(),
                service=request.service,
                charset=request.charset,
                sign_type=request.sign_type,
                batch_no=batch_no,
                refund_date=request.refund_date,
                notify_url=request.notify_url,
                notify_id=notify_id,
                items=planned,
                auto_amount=auto,
            )
            # As `_record_locked` does (journal first, then the books), with the
            # columns built once for the journal line and the result details.
            columns = batch_columns(planned)
            self.journal.append_json(record.to_json(columns))
            self.ledger.apply(record)
        details, successes = batch_results(columns.trade_nos, columns.amounts, columns.codes)
        if notify_id is not None:
            with self._lock:
                self._details[notify_id] = (details, successes)
        log.info(
            "sandbox.batch.accepted",
            batch_no=batch_no,
            items=len(planned),
            success_num=successes,
            sign_type=request.sign_type,
            charset=request.charset,
            notify_id=notify_id,
        )
        return None, notify_id

    def notify_verify(self, query: NotifyVerifyQuery) -> Answer:
        """`true`: genuine and not yet acknowledged; `false`: else; `invalid`: wrong partner."""
        fault = self.faults.draw("http_5xx", service="notify_verify")
        if fault is not None:
            self._fault_log("http_5xx", None, service="notify_verify")
            status = int(fault.option("status"))
            return Answer(status, _error_page(status), HTML_TYPE)
        delay = 0.0
        for name in ("hang", "slow"):
            fault = self.faults.draw(name, service="notify_verify")
            if fault is not None:
                self._fault_log(name, None, service="notify_verify")
                delay = float(fault.option("seconds"))
                break
        if query.partner != self.config.partner:
            answer = "invalid"
        else:
            with self._lock:
                note = self.ledger.notifications.get(query.notify_id or "")
                answer = "true" if note is not None and not note.acknowledged else "false"
        log.info("sandbox.notify_verify", notify_id=query.notify_id, answer=answer)
        return Answer(200, answer.encode("ascii"), TEXT_TYPE, delay=delay)

    # -- notifications (called by the Notifier) -------------------------------

    def prepare(self, notify_id: str, *, forged: bool) -> Delivery | None:
        """The signed form of a pending notification; a forged copy when `forged`."""
        with self._lock:
            note = self.ledger.notifications.get(notify_id)
            if note is None or not note.pending:
                self._details.pop(notify_id, None)
                return None
            items = self.ledger.batches[note.batch_no].record.items
            cached = self._details.get(notify_id)
            if cached is None:
                columns = batch_columns(items)
                cached = batch_results(columns.trade_nos, columns.amounts, columns.codes)
                self._details[notify_id] = cached
            batch_no, charset, sign_type, url = (
                note.batch_no,
                note.charset,
                note.sign_type,
                note.url,
            )
        details, successes = cached
        if forged:
            details = format_result_details([(t, a, SUCCESS) for t, a, _, _, _ in items])
            successes = len(items)
        params = {
            "notify_time": notify_time(self.clock.now()),
            "notify_type": NOTIFY_TYPE,
            "notify_id": notify_id,
        }
        unsigned = {**params, "batch_no": batch_no, "success_num": str(successes)}
        unsigned["result_details"] = details
        if forged:
            signature = self._forged_signature(sign_type)
        elif sign_type == "RSA":
            signature = sign(
                unsigned, sign_type="RSA", charset=charset, private_key_pem=self._keys.private_pem
            )
        else:
            signature = sign(
                unsigned, sign_type="MD5", charset=charset, md5_key=self.config.md5_key
            )
        form = {**params, "sign_type": sign_type, "sign": signature}
        form.update((k, unsigned[k]) for k in ("batch_no", "success_num", "result_details"))
        return Delivery(
            url=url,
            body=encode_form(form, charset),
            content_type=f"application/x-www-form-urlencoded; charset={charset}",
        )

    @staticmethod
    def _forged_signature(sign_type: str) -> str:
        noise = os.urandom(256)
        if sign_type == "RSA":
            return base64.b64encode(noise).decode("ascii")
        return hashlib.md5(noise).hexdigest()

    def delivered(self, notify_id: str, kind: str, outcome: Outcome | None) -> float | None:
        """Record one delivery; the delay before the next attempt, or None when there is none."""
        now = time.time()
        record = SendRecord(
            notify_id=notify_id,
            kind="lost" if outcome is None else kind,  # type: ignore[arg-type]
            ts=now,
            at=self._at(),
            status=None if outcome is None else outcome.status,
            acknowledged=outcome is not None and outcome.acknowledged,
            error=None if outcome is None else outcome.error,
        )
        with self._lock:
            note = self.ledger.notifications.get(notify_id)
            if note is None:
                return None
            self._record_locked(record)
            attempts, acknowledged, batch_no = note.attempts, note.acknowledged, note.batch_no
        if outcome is not None:  # a lost delivery was logged as sandbox.notify.lost
            log.info(
                "sandbox.notify.sent",
                notify_id=notify_id,
                batch_no=batch_no,
                kind=record.kind,
                attempt=attempts,
                status=record.status,
                acknowledged=record.acknowledged,
                error=record.error,
            )
        if kind == "forged" or acknowledged:
            if acknowledged:
                with self._lock:
                    self._details.pop(notify_id, None)
            return None
        delay = resend_delay(attempts, self.config.time_factor)
        if delay is None:
            with self._lock:
                if self.ledger.notifications[notify_id].pending:
                    self._record_locked(GaveUpRecord(notify_id, time.time(), self._at()))
                self._details.pop(notify_id, None)
            log.warning(
                "sandbox.notify.gave_up", notify_id=notify_id, batch_no=batch_no, attempts=attempts
            )
        return delay

    def draw(self, name: str) -> Fault | None:
        fault = self.faults.draw(name)
        if fault is not None:
            self._fault_log(name, None)
        return fault

    # -- control API -----------------------------------------------------------

    def create_trade(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """Create or change a paid trade: {"trade_no", "amount", "status"="paid"}."""
        trade_no = data.get("trade_no")
        if not isinstance(trade_no, str) or not is_valid_trade_no(trade_no):
            raise ValueError("trade_no must be 16-64 digits")
        amount_text = data.get("amount")
        try:
            amount = parse_amount(amount_text if isinstance(amount_text, str) else "")
        except DetailDataError:
            raise ValueError('amount must be a string like "100.00" (> 0, two decimals)') from None
        status = data.get("status", "paid")
        if status not in TRADE_STATUSES:
            raise ValueError(f"status must be one of {', '.join(TRADE_STATUSES)}")
        record = TradeRecord(
            trade_no=trade_no, amount=amount, status=str(status), ts=time.time(), at=self._at()
        )
        with self._lock:
            self._record_locked(record)
            view = self.ledger.trades[trade_no].to_json()
        log.info(
            "sandbox.trade.created", trade_no=trade_no, amount=format_amount(amount), status=status
        )
        return view

    def set_faults(self, spec: object) -> dict[str, Any]:
        """Replace the faults in force (ConfigError on a bad spec)."""
        self.faults.replace(parse_fault_set(spec))
        snapshot = self.faults.snapshot()
        log.info("sandbox.faults.set", faults=sorted(snapshot["faults"]))
        return snapshot

    def clear_faults(self) -> dict[str, Any]:
        self.faults.clear()
        log.info("sandbox.faults.cleared")
        return self.faults.snapshot()

    def set_clock_offset(self, offset: object) -> dict[str, Any]:
        """Shift the sandbox clock by `offset` seconds (ValueError when not a sane number)."""
        if isinstance(offset, bool) or not isinstance(offset, int | float):
            raise ValueError("offset_seconds must be a number")
        with self._lock:
            self.clock.set_offset(float(offset))
            self._record_locked(ClockRecord(offset_seconds=float(offset), ts=time.time()))
        log.info("sandbox.clock.set", offset_seconds=float(offset))
        return self.clock_view()

    def clock_view(self) -> dict[str, Any]:
        now = self.clock.now()
        return {
            "offset_seconds": self.clock.offset_seconds,
            "now": now.isoformat(),
            "beijing_date": self.clock.today().isoformat(),
        }

    def summary(self) -> dict[str, Any]:
        with self._lock:
            summary = self.ledger.summary()
        summary["faults_fired"] = self.faults.snapshot()["fired_total"]
        queued = self.notifier.queued()
        summary["notifications"]["queued"] = queued
        # Idle: nothing left to deliver and no delivery (e.g. a duplicate) in flight.
        summary["idle"] = summary["notifications"]["pending"] == 0 and queued == 0
        return summary

    def ledger_view(self, *, batch_no: str | None, trade_no: str | None) -> dict[str, Any]:
        with self._lock:
            return self.ledger.view(batch_no=batch_no, trade_no=trade_no)

    def info(self) -> dict[str, Any]:
        return {
            "partner": self.config.partner,
            "alipay_public_key_file": str(self._keys.public_path),
            "alipay_public_key": self._keys.public_pem.decode("ascii"),
            "md5": bool(self.config.md5_key),
            "rsa": bool(self.config.merchant_public_key),
            "time_factor": self.config.time_factor,
            "process_delay": self.config.process_delay,
            "auto_trades": self.config.auto_trades,
            "auto_trade_amount": format_amount(self.config.auto_trade_amount),
            "state_dir": str(self.config.state_dir),
            "pid": os.getpid(),
        }

    # -- helpers ----------------------------------------------------------------

    def _at(self) -> str:
        return self.clock.now().isoformat()

    def _refuse(self, service: str | None, batch_no: str | None, code: str, reason: str) -> None:
        with self._lock:
            self._refuse_locked(service, batch_no, code, reason, None)

    def _refuse_locked(
        self, service: str | None, batch_no: str | None, code: str, reason: str, items: int | None
    ) -> None:
        record = RequestRecord(
            ts=time.time(),
            at=self._at(),
            service=service,
            batch_no=batch_no,
            code=code,
            item_count=items,
        )
        self._record_locked(record)
        log.info("sandbox.batch.refused", batch_no=batch_no, code=code, reason=reason)

    def _record(self, record: Record) -> None:
        with self._lock:
            self._record_locked(record)

    def _record_locked(self, record: Record) -> None:
        self.journal.append(record)
        self.ledger.apply(record)

    def _fault_log(self, name: str, batch_no: str | None, *, service: str = "refund") -> None:
        log.info("sandbox.fault.injected", fault=name, batch_no=batch_no, service=service)
