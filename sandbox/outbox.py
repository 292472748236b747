"""The notifications' side of the books: what `sandbox.notifier` sends, and what came of it.

`Outbox` is the notifier's `Deliveries`. `prepare` builds the signed
`batch_refund_notify` form of a pending notification from its batch in the
books, afresh for each delivery (the same `notify_id` and content, a new
`notify_time` and signature; a `result_shapes` batch writes the same text
every time, its shapes being seeded by the batch record). `delivered`
journals each delivery and says when to try again: after the gaps of the
resend schedule (`sandbox.protocol.resend_delay`) until an acknowledgement,
or never again once the schedule ran out (given up). A forged copy
(`notify_bad_sign`) says every item succeeded and carries a signature no
key made; it does not count as an attempt.

A notification is signed for its batch's partner: MD5 with that partner's
key when the batch came MD5-signed, else RSA with the sandbox's (Alipay's)
private key, the same for every partner. An MD5 one whose partner is no
longer served, or has no MD5 key any more (the journal of another
configuration), cannot be signed: it is given up.

`verify` is the `notify_verify` rule: `true` for a genuine notify_id sent
for the asking partner that is not yet acknowledged and whose latest
delivery attempt started at most `notify_verify_seconds` ago (real seconds;
Alipay: about one minute), `invalid` for a notify_id sent for another
partner, else `false`.

`resume` is what a restart owes the notifications a previous run left
pending: each is due after the processing delay (never attempted) or after
its next resend gap from its latest attempt, or is given up when the
schedule has run out.
"""

from __future__ import annotations

import base64
import hashlib
import os
import time
from decimal import Decimal

import structlog

from sandbox.bookkeeper import Bookkeeper
from sandbox.clock import SandboxClock
from sandbox.config import SandboxConfig
from sandbox.faults import Fault, FaultBook, log_injected
from sandbox.keys import AlipayKeys
from sandbox.notifier import Delivery, Outcome
from sandbox.protocol import (
    NOTIFY_TYPE,
    SKIPPED,
    SUCCESS,
    format_result_details,
    notify_time,
    resend_delay,
    success_num,
)
from sandbox.records import BatchItem, GaveUpRecord, SendRecord
from sandbox.shapes import shaped_result_details
from worker.mapi import encode_form, sign

__all__ = ["Outbox"]

log = structlog.get_logger(__name__)


class Outbox:
    """Builds and records notification deliveries (see the module docstring)."""

    def __init__(
        self,
        config: SandboxConfig,
        keys: AlipayKeys,
        books: Bookkeeper,
        clock: SandboxClock,
        faults: FaultBook,
    ) -> None:
        self._config = config
        self._keys = keys
        self._books = books
        self._clock = clock
        self._faults = faults
        # notify_id -> when its latest delivery attempt started (this run).
        self._attempt_started: dict[str, float] = {}

    def resume(self) -> list[tuple[str, float]]:
        """(notify_id, seconds until due) of every notification a previous run left pending."""
        now = time.time()
        factor = self._config.time_factor
        with self._books.lock:
            pending = self._books.ledger.pending_notifications()
        due: list[tuple[str, float]] = []
        for note in pending:
            if note.attempts == 0:
                at = note.created_ts + self._config.process_delay * factor
            else:
                gap = resend_delay(note.attempts, factor)
                if gap is None:
                    self._books.record(GaveUpRecord(note.notify_id, now, self._clock.stamp()))
                    continue
                at = (note.last_attempt_ts or now) + gap
            due.append((note.notify_id, max(0.0, at - now)))
        return due

    def verify(self, notify_id: str, partner: str, seconds: float) -> str:
        """`notify_verify`'s answer to `partner` about `notify_id` (see the module docstring)."""
        with self._books.lock:
            note = self._books.ledger.notifications.get(notify_id)
            if note is not None and note.partner != partner:
                return "invalid"
            if note is None or note.acknowledged:
                return "false"
            started = max(
                self._attempt_started.get(notify_id, 0.0),
                note.last_attempt_ts or note.created_ts,
            )
            return "true" if time.time() - started <= seconds else "false"

    # -- Deliveries -----------------------------------------------------------

    def prepare(self, notify_id: str, *, forged: bool) -> Delivery | None:
        """The signed form of a pending notification; a forged copy when `forged`."""
        with self._books.lock:
            note = self._books.ledger.notifications.get(notify_id)
            if note is None or not note.pending:
                self._attempt_started.pop(notify_id, None)
                return None
            record = self._books.ledger.batches[(note.partner, note.batch_no)].record
            partner = self._config.partner_config(note.partner)
            md5_key = partner.md5_key if partner is not None else None
            if note.sign_type != "RSA" and not md5_key and not forged:
                self._give_up_unsignable(note.notify_id, note.partner, note.batch_no)
                return None
            if not forged:
                self._attempt_started[notify_id] = time.time()
        if forged:
            details, successes = _forged_results(record.items)
        else:
            details, successes = self._results(record.items, record.shapes, note.partner)
        params = {
            "notify_time": notify_time(self._clock.now()),
            "notify_type": NOTIFY_TYPE,
            "notify_id": notify_id,
        }
        unsigned = {**params, "batch_no": note.batch_no, "success_num": str(successes)}
        unsigned["result_details"] = details
        if forged:
            signature = _forged_signature(note.sign_type)
        elif note.sign_type == "RSA":
            signature = sign(
                unsigned,
                sign_type="RSA",
                charset=note.charset,
                private_key_pem=self._keys.private_pem,
            )
        else:
            signature = sign(unsigned, sign_type="MD5", charset=note.charset, md5_key=md5_key)
        form = {**params, "sign_type": note.sign_type, "sign": signature}
        form.update((k, unsigned[k]) for k in ("batch_no", "success_num", "result_details"))
        return Delivery(
            url=note.url,
            body=encode_form(form, note.charset),
            content_type=f"application/x-www-form-urlencoded; charset={note.charset}",
        )

    def delivered(self, notify_id: str, kind: str, outcome: Outcome | None) -> float | None:
        """Record one delivery; the delay before the next attempt, or None when there is none."""
        now = time.time()
        record = SendRecord(
            notify_id=notify_id,
            kind="lost" if outcome is None else kind,  # type: ignore[arg-type]
            ts=now,
            at=self._clock.stamp(),
            status=None if outcome is None else outcome.status,
            acknowledged=outcome is not None and outcome.acknowledged,
            error=None if outcome is None else outcome.error,
        )
        with self._books.lock:
            note = self._books.ledger.notifications.get(notify_id)
            if note is None:
                return None
            self._books.record_locked(record)
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
                with self._books.lock:
                    self._attempt_started.pop(notify_id, None)
            return None
        delay = resend_delay(attempts, self._config.time_factor)
        if delay is None:
            with self._books.lock:
                if self._books.ledger.notifications[notify_id].pending:
                    self._books.record_locked(
                        GaveUpRecord(notify_id, time.time(), self._clock.stamp())
                    )
                self._attempt_started.pop(notify_id, None)
            log.warning(
                "sandbox.notify.gave_up", notify_id=notify_id, batch_no=batch_no, attempts=attempts
            )
        return delay

    def draw(self, name: str) -> Fault | None:
        """Roll the dice for a delivery fault (logged when it fires)."""
        fault = self._faults.draw(name)
        if fault is not None:
            log_injected(name, None)
        return fault

    # -- helpers ----------------------------------------------------------------

    def _give_up_unsignable(self, notify_id: str, partner: str, batch_no: str) -> None:
        """Give up a notification its partner's key cannot sign; the caller holds the lock."""
        self._books.record_locked(GaveUpRecord(notify_id, time.time(), self._clock.stamp()))
        self._attempt_started.pop(notify_id, None)
        log.warning(
            "sandbox.notify.gave_up",
            notify_id=notify_id,
            partner=partner,
            batch_no=batch_no,
            reason="no MD5 key for the partner",
        )

    def _results(
        self, items: tuple[BatchItem, ...], shapes: int | None, partner: str
    ) -> tuple[str, int]:
        """`result_details` and `success_num` of a batch; in other shapes when `shapes` is set."""
        triples = [(t, a, c) for t, a, _, c, _ in items if c != SKIPPED]
        successes = success_num(triples)
        if shapes is None:
            return format_result_details(triples), successes
        rows = [(t, str(a), c) for t, a, c in triples]
        return shaped_result_details(rows, shapes, partner=partner), successes


def _forged_results(items: tuple[BatchItem, ...]) -> tuple[str, int]:
    """What a forged copy claims: every item the batch reports, as SUCCESS."""
    claimed: list[tuple[str, Decimal, str]] = [
        (t, a, SUCCESS) for t, a, _, c, _ in items if c != SKIPPED
    ]
    return format_result_details(claimed), len(claimed)


def _forged_signature(sign_type: str) -> str:
    noise = os.urandom(256)
    if sign_type == "RSA":
        return base64.b64encode(noise).decode("ascii")
    return hashlib.md5(noise).hexdigest()
