"""The sandbox's books: paid trades, batches received, refunds executed, notifications sent.

Event-sourced: every change is a record (`sandbox.records`), and
`Ledger.apply` is the only code that changes the books. The service writes a record to the
journal before applying it, and a restart replays the journal through the
same `apply`, so the books after a restart are exactly the books before it.
Deciding what a batch does (`plan_items`) reads the books without changing
them.

Item rules of an accepted batch (each item on its own, in request order):

* trade unknown -> TRADE_NOT_EXIST, unless auto-trades is on: then the trade
  is created as paid with the configured amount;
* trade closed -> TRADE_HAS_CLOSED; trade finished -> TRADE_STATUS_ERROR;
* trade refunded 99 times already (external refunds included) -> in the
  `refuse` refund-limit mode TRADE_STATUS_ERROR (its state no longer allows a
  refund); in the `skip` mode the item is `SKIPPED`: neither refunded nor
  reported, as Alipay's page on the limit says;
* refunds would exceed the paid amount -> REFUND_AMOUNT_NOT_VALID;
* an injected `item_failure` -> its code; otherwise SUCCESS, and the refund
  is executed (batch_no, amount, reason and time recorded on the trade).

Refunds made outside any worker batch (`ExternalRefundRecord`, as the
merchant console makes them) are executions of their trade like any other:
they count toward the 99 refunds and the paid amount.

Batches (worker or external) are kept per partner: a batch is known by
(partner, batch_no), so two partners may use the same batch_no. Trades and
their tallies (the 99 refunds, the refunded total) are per trade_no, whoever
refunded them.

The counters the summary reports (`sandbox.reports`) are kept up to date
by `apply`, so a summary costs nothing per item.

Not thread-safe on its own: the service holds one lock around plan, journal
append and apply.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import replace
from decimal import Decimal
from typing import Any, Final

from sandbox.accounts import ZERO, Batch, Notification, Trade
from sandbox.protocol import SUCCESS
from sandbox.records import (
    BatchItem,
    BatchRecord,
    ClockRecord,
    ExternalRefundRecord,
    GaveUpRecord,
    Record,
    RequestRecord,
    SendRecord,
    TradeRecord,
)

__all__ = [
    "MAX_REFUNDS_PER_TRADE",
    "REFUND_AMOUNT_NOT_VALID",
    "TRADE_HAS_CLOSED",
    "TRADE_NOT_EXIST",
    "TRADE_STATUSES",
    "TRADE_STATUS_ERROR",
    "Ledger",
]

MAX_REFUNDS_PER_TRADE: Final = 99
TRADE_STATUSES: Final = ("paid", "closed", "finished")
TRADE_NOT_EXIST: Final = "TRADE_NOT_EXIST"
TRADE_HAS_CLOSED: Final = "TRADE_HAS_CLOSED"
TRADE_STATUS_ERROR: Final = "TRADE_STATUS_ERROR"
REFUND_AMOUNT_NOT_VALID: Final = "REFUND_AMOUNT_NOT_VALID"


class Ledger:
    """All books of the sandbox (see the module docstring)."""

    def __init__(self) -> None:
        self.trades: dict[str, Trade] = {}
        # (partner, batch_no) -> the accepted batch
        self.batches: dict[tuple[str, str], Batch] = {}
        self.requests: list[RequestRecord] = []
        self.notifications: dict[str, Notification] = {}
        # (partner, batch_no) -> the external refunds made under it
        self.external: dict[tuple[str, str], ExternalRefundRecord] = {}
        self.clock_offset: float = 0.0
        # Counters for the summary.
        self.external_count = 0
        self.refused_by_code: Counter[str] = Counter()
        self.item_codes: Counter[str] = Counter()
        self.items_accepted = 0
        self.batches_by_service: Counter[str] = Counter()
        self.executed = 0
        self.amount_executed = ZERO
        self.multi_refunded = 0
        self.double: list[dict[str, Any]] = []  # executions repeating a (batch_no, trade_no)
        self.over: set[str] = set()  # trades refunded beyond the paid amount
        self.pending_count = 0

    # -- deciding -----------------------------------------------------------

    def is_accepted(self, batch_no: str, *, partner: str) -> bool:
        """Whether `partner` had `batch_no` accepted (or made externally) before."""
        key = (partner, batch_no)
        return key in self.batches or key in self.external

    def query_records(
        self, batch_no: str | None, *, partner: str
    ) -> list[BatchRecord | ExternalRefundRecord]:
        """What `partner` asking the refund query searches: its batch `batch_no`, or all of them."""
        if batch_no is None:
            everything: list[BatchRecord | ExternalRefundRecord] = [
                b.record for key, b in self.batches.items() if key[0] == partner
            ]
            externals = (r for key, r in self.external.items() if key[0] == partner)
            everything.extend({id(r): r for r in externals}.values())
            return everything
        batch = self.batches.get((partner, batch_no))
        if batch is not None:
            return [batch.record]
        external = self.external.get((partner, batch_no))
        if external is None:
            return []
        return [replace(external, batch_nos=(batch_no,))]

    def plan_items(
        self,
        items: Iterable[tuple[str, Decimal, str]],
        *,
        auto_amount: Decimal | None,
        item_fault: Callable[[str], str | None] | None,
        limit_code: str = TRADE_STATUS_ERROR,
    ) -> tuple[BatchItem, ...]:
        """Decide each item of a batch about to be accepted; changes nothing.

        `auto_amount` is the paid amount of auto-created trades (None: no
        auto-creation). `item_fault` (None when no fault is in force) gives the
        injected failure code of an item that would succeed. `limit_code` is
        the outcome of an item whose trade was refunded 99 times already
        (TRADE_STATUS_ERROR, or SKIPPED). Items must have distinct trades
        (checked before).
        """
        planned: list[BatchItem] = []
        for trade_no, amount, reason in items:
            trade = self.trades.get(trade_no)
            auto = False
            if trade is None:
                if auto_amount is None:
                    planned.append((trade_no, amount, reason, TRADE_NOT_EXIST, False))
                    continue
                # Created paid with `auto_amount`, nothing refunded yet.
                auto = True
                paid, status, refunded, count = auto_amount, "paid", ZERO, 0
            else:
                paid, status = trade.paid, trade.status
                refunded, count = trade.refunded, len(trade.executions)
            if status == "closed":
                code = TRADE_HAS_CLOSED
            elif status != "paid":
                code = TRADE_STATUS_ERROR
            elif count >= MAX_REFUNDS_PER_TRADE:
                code = limit_code
            elif refunded + amount > paid:
                code = REFUND_AMOUNT_NOT_VALID
            elif item_fault is not None:
                code = item_fault(trade_no) or SUCCESS
            else:
                code = SUCCESS
            planned.append((trade_no, amount, reason, code, auto))
        return tuple(planned)

    # -- changing -----------------------------------------------------------

    def apply(self, record: Record) -> None:
        """Change the books by one record (live or replayed)."""
        if isinstance(record, BatchRecord):
            self._apply_batch(record)
        elif isinstance(record, SendRecord):
            self._apply_send(record)
        elif isinstance(record, RequestRecord):
            self.requests.append(record)
            self.refused_by_code[record.code] += 1
        elif isinstance(record, TradeRecord):
            self._apply_trade(record)
        elif isinstance(record, GaveUpRecord):
            note = self.notifications.get(record.notify_id)
            if note is not None and note.pending:
                note.given_up = True
                self.pending_count -= 1
        elif isinstance(record, ClockRecord):
            self.clock_offset = record.offset_seconds
        elif isinstance(record, ExternalRefundRecord):
            self._apply_external(record)

    def _apply_external(self, record: ExternalRefundRecord) -> None:
        trade = self.trades.get(record.trade_no)
        if trade is None:
            if record.auto_amount is None:
                return
            trade = Trade(record.trade_no, record.auto_amount, "paid", True, record.at)
            self.trades[record.trade_no] = trade
        for batch_no in record.batch_nos:
            self.external[(record.partner, batch_no)] = record
            self._execute(trade, batch_no, record.amount, record.reason, record.at)
        self.external_count += len(record.batch_nos)
        self._check_over(trade)

    def _apply_trade(self, record: TradeRecord) -> None:
        trade = self.trades.get(record.trade_no)
        if trade is None:
            trade = Trade(record.trade_no, record.amount, record.status, False, record.at)
            self.trades[record.trade_no] = trade
        else:
            trade.paid = record.amount
            trade.status = record.status
        self._check_over(trade)

    def _apply_batch(self, record: BatchRecord) -> None:
        # A (batch_no, trade_no) pair can only repeat when the same batch_no is
        # executed twice, or when a batch holds a trade twice: both are flagged.
        batch_no = record.batch_no
        repeated_batch = record.key in self.batches
        seen: set[str] = set()
        self.batches[record.key] = Batch(record)
        self.batches_by_service[record.service] += 1
        self.items_accepted += len(record.items)
        for trade_no, amount, reason, code, auto in record.items:
            self.item_codes[code] += 1
            trade = self.trades.get(trade_no)
            if trade is None:
                if not auto or record.auto_amount is None:
                    continue
                trade = Trade(trade_no, record.auto_amount, "paid", True, record.at)
                self.trades[trade_no] = trade
            if code != SUCCESS:
                continue
            if repeated_batch or trade_no in seen:
                self.double.append(
                    {"partner": record.partner, "batch_no": batch_no, "trade_no": trade_no}
                )
            seen.add(trade_no)
            self._execute(trade, batch_no, amount, reason, record.at)
            self.executed += 1
            self.amount_executed += amount
            if trade.refunded > trade.paid:
                self.over.add(trade_no)
        if record.notify_id is not None and record.notify_url is not None:
            self.notifications[record.notify_id] = Notification(
                notify_id=record.notify_id,
                partner=record.partner,
                batch_no=record.batch_no,
                url=record.notify_url,
                charset=record.charset,
                sign_type=record.sign_type,
                created_ts=record.ts,
            )
            self.pending_count += 1

    def _execute(self, trade: Trade, batch_no: str, amount: Decimal, reason: str, at: str) -> None:
        """One refund of `trade`, executed under `batch_no`."""
        trade.executions.append((batch_no, amount, reason, at))
        trade.refunded += amount
        if len(trade.executions) == 2:
            self.multi_refunded += 1

    def _apply_send(self, record: SendRecord) -> None:
        note = self.notifications.get(record.notify_id)
        if note is None:
            return
        if record.kind == "forged":
            note.forged_sends += 1
            if record.acknowledged:
                note.forged_acknowledged += 1
            return
        if record.kind == "duplicate":
            note.duplicates += 1
            note.sends += 1
        else:
            note.attempts += 1
            note.last_attempt_ts = record.ts
            if record.kind == "lost":
                note.lost += 1
                return
            note.sends += 1
        note.last_status = record.status
        note.last_error = record.error
        if record.acknowledged and not note.acknowledged:
            if note.given_up:
                self.pending_count += 1  # a late success still counts; undo the give-up
                note.given_up = False
            note.acknowledged = True
            note.acknowledged_at = record.at
            self.pending_count -= 1

    def _check_over(self, trade: Trade) -> None:
        if trade.refunded > trade.paid:
            self.over.add(trade.trade_no)
        else:
            self.over.discard(trade.trade_no)

    # -- reading ------------------------------------------------------------

    def pending_notifications(self) -> list[Notification]:
        """Notifications still to be delivered (neither acknowledged nor given up)."""
        return [n for n in self.notifications.values() if n.pending]
