"""Taking a refund batch that passed every stateless check into the books.

Under the books' lock, in this order (first failure wins):

1. the `batch_no` was accepted before from the same partner (or made by an
   external refund of that partner) -> DUPLICATE_BATCH_NO; another
   partner's batch of the same number is another batch;
2. the `lock_error` fault -> BATCH_REFUND_LOCK_ERROR;
3. the `sync_item_failure` fault holds one of the batch's trades -> its code;

each answered `F` and recorded as a refused request. Otherwise the batch is
accepted: its items are decided by the ledger's item rules
(`sandbox.ledger`; the 100th refund of a trade is TRADE_STATUS_ERROR in the
`refuse` refund-limit mode and left out in the `skip` mode), the
`result_shapes` fault is drawn (with `odd_codes`, items that failed anyway
get one of those codes), and the batch gets a fresh notify_id unless it is
never notified: no `notify_url`, every item skipped, or the `notify_never`
fault drawn for it. The batch record is journaled and applied before the
lock is released, so a `batch_no` is accepted at most once per partner even
when two requests race. Both refund services come through here (the password
service once its operator confirmed), and the record keeps which one
(`service`) and, for the password service, the seller account (`seller`).
"""

from __future__ import annotations

import time

import structlog

from sandbox.bookkeeper import Bookkeeper
from sandbox.clock import SandboxClock
from sandbox.config import SandboxConfig
from sandbox.faults import FaultBook, log_injected
from sandbox.protocol import SKIPPED, SUCCESS, new_notify_id
from sandbox.records import BatchItem, BatchRecord, RequestRecord
from sandbox.validation import RefundRequest

__all__ = ["BatchDesk"]

log = structlog.get_logger(__name__)


class BatchDesk:
    """Accepts or refuses checked refund batches (see the module docstring)."""

    def __init__(
        self, config: SandboxConfig, books: Bookkeeper, clock: SandboxClock, faults: FaultBook
    ) -> None:
        self._config = config
        self._books = books
        self._clock = clock
        self._faults = faults

    def accept(self, request: RefundRequest, *, limit_mode: str) -> tuple[str | None, str | None]:
        """(refusal code, None) or (None, notify_id or None when never notified)."""
        batch_no = request.batch_no
        code: str | None
        with self._books.lock:
            if self._books.ledger.is_accepted(batch_no, partner=request.partner):
                code, reason = "DUPLICATE_BATCH_NO", "batch_no was accepted before"
            elif self._faults.draw("lock_error") is not None:
                code, reason = "BATCH_REFUND_LOCK_ERROR", "injected lock_error"
            else:
                code = self._faults.sync_item_failure(row[0] for row in request.rows)
                reason = "injected sync_item_failure"
            if code is not None:
                refused = RequestRecord(
                    ts=time.time(),
                    at=self._clock.stamp(),
                    service=request.service,
                    batch_no=batch_no,
                    code=code,
                    item_count=len(request.rows),
                    partner=request.partner,
                )
                self._books.refuse_locked(refused, reason)
                return code, None
            auto = self._config.auto_trade_amount if self._config.auto_trades else None
            planned = self._books.ledger.plan_items(
                request.rows,
                auto_amount=auto,
                item_fault=(
                    self._faults.item_failure if self._faults.active("item_failure") else None
                ),
                limit_code=SKIPPED if limit_mode == "skip" else "TRADE_STATUS_ERROR",
            )
            shapes, planned = self._draw_shapes(batch_no, planned)
            notify_id = self._notify_id(request, planned)
            record = BatchRecord(
                ts=time.time(),
                at=self._clock.stamp(),
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
                partner=request.partner,
                seller=request.seller.shown if request.seller is not None else None,
            )
            self._books.record_locked(record)
        log.info(
            "sandbox.batch.accepted",
            partner=request.partner,
            batch_no=batch_no,
            items=len(planned),
            success_num=sum(1 for item in planned if item[3] == SUCCESS),
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
        fault = self._faults.draw("result_shapes")
        if fault is None:
            return None, planned
        log_injected("result_shapes", batch_no)
        odd: tuple[str, ...] = tuple(fault.option("odd_codes"))
        if odd:
            planned = tuple(
                (t, a, r, c if c in (SUCCESS, SKIPPED) else self._faults.choice(odd), auto)
                for t, a, r, c, auto in planned
            )
        return self._faults.randbits(32), planned

    def _notify_id(self, request: RefundRequest, planned: tuple[BatchItem, ...]) -> str | None:
        """A fresh notify_id, or None when the batch is never notified."""
        if not request.notify_url:
            return None
        if all(item[3] == SKIPPED for item in planned):
            log.info("sandbox.notify.skipped", batch_no=request.batch_no, reason="all skipped")
            return None
        if self._faults.draw("notify_never") is not None:
            log_injected("notify_never", request.batch_no)
            return None
        return new_notify_id()
