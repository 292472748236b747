"""The sandbox gateway's behaviour, independent of HTTP serving.

`SandboxService` ties the pieces together: the stateless checks
(`validation`), the books (`ledger`) and their journal, the faults, the
clock and the notification sender. The WSGI layer (`app`) turns HTTP into
calls of `gateway`, `notify_verify` and the control methods, and turns the
returned `Answer` into HTTP (including the delays and resets faults ask for).
The refund query (`refund_fastpay_query`) is answered by `query.QueryDesk`
from a copy of the books; it changes nothing.

`notify_verify` answers `true` for a genuine notify_id that is not yet
acknowledged and whose latest delivery attempt started at most
`notify_verify_seconds` ago (real seconds; Alipay: about one minute), else
`false`. A batch gets no notification at all when every item was skipped
(the `skip` refund-limit mode) or when `notify_never` was drawn for it.

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

import structlog

from sandbox.answers import (
    HTML_TYPE,
    TEXT_TYPE,
    XML_TYPE,
    Answer,
    error_page,
    garbage_body,
)
from sandbox.clock import SandboxClock
from sandbox.config import (
    SandboxConfig,
)
from sandbox.control import ControlAPI
from sandbox.faults import Fault, FaultBook
from sandbox.journal import Journal
from sandbox.keys import AlipayKeys
from sandbox.ledger import (
    BatchColumns,
    BatchItem,
    BatchRecord,
    ExternalRefundRecord,
    GaveUpRecord,
    Ledger,
    Record,
    RequestRecord,
    SendRecord,
    batch_columns,
)
from sandbox.notifier import Delivery, Notifier, Outcome
from sandbox.protocol import (
    NOTIFY_TYPE,
    SKIPPED,
    SUCCESS,
    batch_results,
    format_result_details,
    new_notify_id,
    notify_time,
    resend_delay,
    sync_answer,
)
from sandbox.query import QUERY_SERVICE, QueryDesk, RefundQuery, refusal_answer
from sandbox.shapes import shaped_result_details
from sandbox.validation import (
    GatewayContext,
    NotifyVerifyQuery,
    RefundRequest,
    Refusal,
    check_gateway_request,
)
from worker.mapi import (
    encode_form,
    sign,
)

__all__ = ["Answer", "SandboxService"]

log = structlog.get_logger(__name__)


class SandboxService(ControlAPI):
    """The emulated gateway (see the module docstring); the control API is `ControlAPI`'s."""

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
        # notify_id -> when its latest delivery attempt started (this run).
        self._attempt_started: dict[str, float] = {}
        self.refund_limit_mode = config.refund_limit_mode
        self.notify_verify_seconds = config.notify_verify_seconds
        self.queries = QueryDesk(self.faults, self._query_records)
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
        if isinstance(verdict, RefundQuery):
            return self.queries.answer(verdict)
        if isinstance(verdict, Refusal) and verdict.service == QUERY_SERVICE:
            log.info("sandbox.query.refused", code=verdict.code, reason=verdict.reason)
            body, content_type = refusal_answer(verdict.code, verdict.charset)
            return Answer(200, body, content_type)
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
                    int(fault.option("status")), error_page(fault.option("status")), HTML_TYPE
                )
            late_5xx = fault
        fault = self.faults.draw("hang")
        if fault is not None:
            self._fault_log("hang", batch_no)
            if not fault.option("accept"):
                self._refuse(request.service, batch_no, "fault:hang", "injected hang")
                return Answer(504, error_page(504), HTML_TYPE, delay=float(fault.option("seconds")))
            late_hang = fault
        garbage = self.faults.draw("garbage")
        if garbage is not None:
            self._fault_log("garbage", batch_no)
            if not garbage.option("accept"):
                self._refuse(request.service, batch_no, "fault:garbage", "injected garbage")
                return self._garbage("refund", garbage)

        code, note_id = self._accept(request)
        if code is not None:
            return Answer(200, sync_answer(code), XML_TYPE)
        if note_id is not None:
            delay = self.config.process_delay * self.config.time_factor
            self.notifier.schedule(note_id, delay)

        if self.faults.draw("reset_after_accept") is not None:
            self._fault_log("reset_after_accept", batch_no)
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
                limit_code=SKIPPED if self.refund_limit_mode == "skip" else "TRADE_STATUS_ERROR",
            )
            shapes, planned = self._draw_shapes(batch_no, planned)
            notify_id = self._notify_id(request, planned)
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
                shapes=shapes,
            )
            # As `_record_locked` does (journal first, then the books), with the
            # columns built once for the journal line and the result details.
            columns = batch_columns(planned)
            self.journal.append_json(record.to_json(columns))
            self.ledger.apply(record)
        details, successes = self._results(columns, shapes)
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

    def _draw_shapes(
        self, batch_no: str, planned: tuple[BatchItem, ...]
    ) -> tuple[int | None, tuple[BatchItem, ...]]:
        """The `result_shapes` seed of a batch (None when not drawn) and its items.

        With `odd_codes`, every item that failed anyway gets one of them instead.
        """
        fault = self.faults.draw("result_shapes")
        if fault is None:
            return None, planned
        self._fault_log("result_shapes", batch_no)
        odd: tuple[str, ...] = tuple(fault.option("odd_codes"))
        if odd:
            planned = tuple(
                (t, a, r, c if c in (SUCCESS, SKIPPED) else self.faults.choice(odd), auto)
                for t, a, r, c, auto in planned
            )
        return self.faults.randbits(32), planned

    def _notify_id(self, request: RefundRequest, planned: tuple[BatchItem, ...]) -> str | None:
        """A fresh notify_id, or None when the batch is never notified."""
        if not request.notify_url:
            return None
        if all(item[3] == SKIPPED for item in planned):
            log.info("sandbox.notify.skipped", batch_no=request.batch_no, reason="all skipped")
            return None
        if self.faults.draw("notify_never") is not None:
            self._fault_log("notify_never", request.batch_no)
            return None
        return new_notify_id()

    def _results(self, columns: BatchColumns, shapes: int | None) -> tuple[str, int]:
        """`result_details` and `success_num` of a batch, in other shapes when `shapes` is set."""
        details, successes = batch_results(columns.trade_nos, columns.amounts, columns.codes)
        if shapes is None:
            return details, successes
        rows = [
            row
            for row in zip(columns.trade_nos, columns.amounts, columns.codes, strict=True)
            if row[2] != SKIPPED
        ]
        return shaped_result_details(rows, shapes, partner=self.config.partner), successes

    def _garbage(self, service: str, fault: Fault) -> Answer:
        kind = str(fault.option("body"))
        if kind == "any":
            kind = self.faults.choice(("html", "truncated"))
        body, content_type = garbage_body(service, kind)
        return Answer(200, body, content_type)

    def _query_records(self, batch_no: str | None) -> list[BatchRecord | ExternalRefundRecord]:
        with self._lock:
            return self.ledger.query_records(batch_no)

    def notify_verify(self, query: NotifyVerifyQuery) -> Answer:
        """`true`: genuine, unacknowledged, unexpired; `false`: else; `invalid`: wrong partner."""
        fault = self.faults.draw("http_5xx", service="notify_verify")
        if fault is not None:
            self._fault_log("http_5xx", None, service="notify_verify")
            status = int(fault.option("status"))
            return Answer(status, error_page(status), HTML_TYPE)
        fault = self.faults.draw("garbage", service="notify_verify")
        if fault is not None:
            self._fault_log("garbage", None, service="notify_verify")
            return self._garbage("notify_verify", fault)
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
            answer = "true" if self._verifiable(query.notify_id or "") else "false"
        log.info("sandbox.notify_verify", notify_id=query.notify_id, answer=answer)
        return Answer(200, answer.encode("ascii"), TEXT_TYPE, delay=delay)

    def _verifiable(self, notify_id: str) -> bool:
        """Genuine, not acknowledged, and its latest attempt started recently enough."""
        with self._lock:
            note = self.ledger.notifications.get(notify_id)
            if note is None or note.acknowledged:
                return False
            started = max(
                self._attempt_started.get(notify_id, 0.0),
                note.last_attempt_ts or note.created_ts,
            )
            return time.time() - started <= self.notify_verify_seconds

    # -- notifications (called by the Notifier) -------------------------------

    def prepare(self, notify_id: str, *, forged: bool) -> Delivery | None:
        """The signed form of a pending notification; a forged copy when `forged`."""
        with self._lock:
            note = self.ledger.notifications.get(notify_id)
            if note is None or not note.pending:
                self._details.pop(notify_id, None)
                self._attempt_started.pop(notify_id, None)
                return None
            record = self.ledger.batches[note.batch_no].record
            items = record.items
            cached = self._details.get(notify_id)
            if cached is None:
                cached = self._results(batch_columns(items), record.shapes)
                self._details[notify_id] = cached
            if not forged:
                self._attempt_started[notify_id] = time.time()
            batch_no, charset, sign_type, url = (
                note.batch_no,
                note.charset,
                note.sign_type,
                note.url,
            )
        details, successes = cached
        if forged:
            details = format_result_details(
                [(t, a, SUCCESS) for t, a, _, c, _ in items if c != SKIPPED]
            )
            successes = sum(1 for item in items if item[3] != SKIPPED)
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
                    self._attempt_started.pop(notify_id, None)
            return None
        delay = resend_delay(attempts, self.config.time_factor)
        if delay is None:
            with self._lock:
                if self.ledger.notifications[notify_id].pending:
                    self._record_locked(GaveUpRecord(notify_id, time.time(), self._at()))
                self._details.pop(notify_id, None)
                self._attempt_started.pop(notify_id, None)
            log.warning(
                "sandbox.notify.gave_up", notify_id=notify_id, batch_no=batch_no, attempts=attempts
            )
        return delay

    def draw(self, name: str) -> Fault | None:
        fault = self.faults.draw(name)
        if fault is not None:
            self._fault_log(name, None)
        return fault

    # -- helpers ----------------------------------------------------------------

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
