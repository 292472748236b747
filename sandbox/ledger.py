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

Not thread-safe on its own: the service holds one lock around plan, journal
append and apply.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any, Final

from sandbox.protocol import SUCCESS
from sandbox.records import (
    BatchColumns,
    BatchItem,
    BatchRecord,
    ClockRecord,
    ExternalRefundRecord,
    GaveUpRecord,
    Record,
    RequestRecord,
    SendKind,
    SendRecord,
    TradeRecord,
    batch_columns,
    record_from_json,
)
from worker.mapi import format_amount

__all__ = [
    "MAX_REFUNDS_PER_TRADE",
    "TRADE_STATUSES",
    "Batch",
    "BatchColumns",
    "BatchItem",
    "BatchRecord",
    "ClockRecord",
    "ExternalRefundRecord",
    "GaveUpRecord",
    "Ledger",
    "Notification",
    "Record",
    "RequestRecord",
    "SendKind",
    "SendRecord",
    "Trade",
    "TradeRecord",
    "batch_columns",
    "record_from_json",
]

MAX_REFUNDS_PER_TRADE: Final = 99
TRADE_STATUSES: Final = ("paid", "closed", "finished")
TRADE_NOT_EXIST: Final = "TRADE_NOT_EXIST"
TRADE_HAS_CLOSED: Final = "TRADE_HAS_CLOSED"
TRADE_STATUS_ERROR: Final = "TRADE_STATUS_ERROR"
REFUND_AMOUNT_NOT_VALID: Final = "REFUND_AMOUNT_NOT_VALID"
ZERO: Final = Decimal("0.00")


# --------------------------------------------------------------------------
# State
# --------------------------------------------------------------------------


@dataclass(slots=True)
class Trade:
    """A paid trade and every refund executed against it."""

    trade_no: str
    paid: Decimal
    status: str
    auto: bool
    created_at: str
    refunded: Decimal = ZERO
    # (batch_no, amount, reason, at)
    executions: list[tuple[str, Decimal, str, str]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "trade_no": self.trade_no,
            "paid": format_amount(self.paid),
            "status": self.status,
            "auto": self.auto,
            "created_at": self.created_at,
            "refunded": format_amount(self.refunded),
            "refund_count": len(self.executions),
            "executions": [
                {"batch_no": b, "amount": format_amount(a), "reason": r, "at": at}
                for b, a, r, at in self.executions
            ],
        }


@dataclass(slots=True)
class Batch:
    """An accepted batch: what was asked and what happened to each item."""

    record: BatchRecord

    def to_json(self) -> dict[str, Any]:
        rec = self.record
        return {
            "batch_no": rec.batch_no,
            "received_at": rec.at,
            "service": rec.service,
            "charset": rec.charset,
            "sign_type": rec.sign_type,
            "refund_date": rec.refund_date,
            "notify_url": rec.notify_url,
            "notify_id": rec.notify_id,
            "outcome": "accepted",
            "success_num": sum(1 for item in rec.items if item[3] == SUCCESS),
            "items": [
                {"trade_no": t, "amount": format_amount(a), "reason": r, "code": c}
                for t, a, r, c, _ in rec.items
            ],
        }


@dataclass(slots=True)
class Notification:
    """The `batch_refund_notify` of one accepted batch and its delivery history."""

    notify_id: str
    batch_no: str
    url: str
    charset: str
    sign_type: str
    created_ts: float
    attempts: int = 0
    sends: int = 0
    lost: int = 0
    duplicates: int = 0
    forged_sends: int = 0
    forged_acknowledged: int = 0
    acknowledged: bool = False
    acknowledged_at: str | None = None
    given_up: bool = False
    last_attempt_ts: float | None = None
    last_status: int | None = None
    last_error: str | None = None

    @property
    def pending(self) -> bool:
        return not (self.acknowledged or self.given_up)

    def to_json(self) -> dict[str, Any]:
        return {
            "notify_id": self.notify_id,
            "batch_no": self.batch_no,
            "url": self.url,
            "sign_type": self.sign_type,
            "charset": self.charset,
            "attempts": self.attempts,
            "sent": self.sends,
            "lost": self.lost,
            "duplicates": self.duplicates,
            "forged_sent": self.forged_sends,
            "forged_acknowledged": self.forged_acknowledged,
            "acknowledged": self.acknowledged,
            "acknowledged_at": self.acknowledged_at,
            "given_up": self.given_up,
            "last_status": self.last_status,
            "last_error": self.last_error,
        }


class Ledger:
    """All books of the sandbox (see the module docstring)."""

    def __init__(self) -> None:
        self.trades: dict[str, Trade] = {}
        self.batches: dict[str, Batch] = {}
        self.requests: list[RequestRecord] = []
        self.notifications: dict[str, Notification] = {}
        # batch_no -> the external refunds made under it
        self.external: dict[str, ExternalRefundRecord] = {}
        self._external_count = 0
        self.clock_offset: float = 0.0
        self._refused: Counter[str] = Counter()
        self._item_codes: Counter[str] = Counter()
        self._items_accepted = 0
        self._executed = 0
        self._amount_executed = ZERO
        self._multi_refunded = 0
        self._double: list[dict[str, Any]] = []
        self._over: set[str] = set()
        self._pending = 0

    # -- deciding -----------------------------------------------------------

    def is_accepted(self, batch_no: str) -> bool:
        """Whether `batch_no` belongs to a batch accepted (or made externally) before."""
        return batch_no in self.batches or batch_no in self.external

    def query_records(self, batch_no: str | None) -> list[BatchRecord | ExternalRefundRecord]:
        """What the refund query searches: the batch `batch_no` names, or every batch."""
        if batch_no is None:
            everything: list[BatchRecord | ExternalRefundRecord] = [
                b.record for b in self.batches.values()
            ]
            everything.extend({id(r): r for r in self.external.values()}.values())
            return everything
        batch = self.batches.get(batch_no)
        if batch is not None:
            return [batch.record]
        external = self.external.get(batch_no)
        if external is None:
            return []
        return [_only(external, batch_no)]

    def plan_items(
        self,
        items: Iterable[tuple[str, Decimal, str]],
        *,
        auto_amount: Decimal | None,
        item_fault: Callable[[str], str | None] | None,
        limit_code: str = TRADE_STATUS_ERROR,
    ) -> tuple[tuple[str, Decimal, str, str, bool], ...]:
        """Decide each item of a batch about to be accepted; changes nothing.

        `auto_amount` is the paid amount of auto-created trades (None: no
        auto-creation). `item_fault` (None when no fault is in force) gives the
        injected failure code of an item that would succeed. `limit_code` is
        the outcome of an item whose trade was refunded 99 times already
        (TRADE_STATUS_ERROR, or SKIPPED). Items must have distinct trades
        (checked before).
        """
        # One pass, locals only: this runs for every item of every batch (up to
        # 200,000 items a second), so each rule is written out per case.
        planned: list[tuple[str, Decimal, str, str, bool]] = []
        append = planned.append
        get = self.trades.get
        for trade_no, amount, reason in items:
            trade = get(trade_no)
            if trade is None:
                if auto_amount is None:
                    append((trade_no, amount, reason, TRADE_NOT_EXIST, False))
                    continue
                # Created paid with `auto_amount`, nothing refunded yet.
                if amount > auto_amount:
                    code = REFUND_AMOUNT_NOT_VALID
                elif item_fault is not None:
                    code = item_fault(trade_no) or SUCCESS
                else:
                    code = SUCCESS
                append((trade_no, amount, reason, code, True))
                continue
            status = trade.status
            if status == "closed":
                code = TRADE_HAS_CLOSED
            elif status != "paid":
                code = TRADE_STATUS_ERROR
            elif len(trade.executions) >= MAX_REFUNDS_PER_TRADE:
                code = limit_code
            elif trade.refunded + amount > trade.paid:
                code = REFUND_AMOUNT_NOT_VALID
            elif item_fault is not None:
                code = item_fault(trade_no) or SUCCESS
            else:
                code = SUCCESS
            append((trade_no, amount, reason, code, False))
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
            self._refused[record.code] += 1
        elif isinstance(record, TradeRecord):
            self._apply_trade(record)
        elif isinstance(record, GaveUpRecord):
            note = self.notifications.get(record.notify_id)
            if note is not None and note.pending:
                note.given_up = True
                self._pending -= 1
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
            self.external[batch_no] = record
            trade.executions.append((batch_no, record.amount, record.reason, record.at))
            if len(trade.executions) == 2:
                self._multi_refunded += 1
            trade.refunded += record.amount
        self._external_count += len(record.batch_nos)
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
        batch_no = record.batch_no
        items = record.items
        # A (batch_no, trade_no) pair can only repeat when the same batch_no is
        # executed twice, or when a batch holds a trade twice: both are caught
        # here (every execution is flagged in the first case, each repeat in the
        # second; accepted batches never hold a trade twice, so the per-item
        # check only runs when one does).
        repeated_batch = batch_no in self.batches
        check_seen = not repeated_batch and len({item[0] for item in items}) != len(items)
        seen: set[str] = set()
        self.batches[batch_no] = Batch(record)
        self._items_accepted += len(items)
        self._item_codes.update([item[3] for item in items])
        trades = self.trades
        get = trades.get
        at = record.at
        executed: list[Decimal] = []
        executed_append = executed.append
        multi = 0
        for trade_no, amount, reason, code, auto in items:
            trade = get(trade_no)
            if trade is None:
                if not auto or record.auto_amount is None:
                    continue
                trade = Trade(trade_no, record.auto_amount, "paid", True, at)
                trades[trade_no] = trade
            if code != SUCCESS:
                continue
            if repeated_batch:
                self._double.append({"batch_no": batch_no, "trade_no": trade_no})
            elif check_seen:
                if trade_no in seen:
                    self._double.append({"batch_no": batch_no, "trade_no": trade_no})
                seen.add(trade_no)
            executions = trade.executions
            executions.append((batch_no, amount, reason, at))
            if len(executions) == 2:
                multi += 1
            refunded = trade.refunded + amount
            trade.refunded = refunded
            if refunded > trade.paid:
                self._over.add(trade_no)
            executed_append(amount)
        self._multi_refunded += multi
        self._executed += len(executed)
        self._amount_executed += sum(executed, ZERO)
        if record.notify_id is not None and record.notify_url is not None:
            self.notifications[record.notify_id] = Notification(
                notify_id=record.notify_id,
                batch_no=record.batch_no,
                url=record.notify_url,
                charset=record.charset,
                sign_type=record.sign_type,
                created_ts=record.ts,
            )
            self._pending += 1

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
                self._pending += 1  # a late success still counts; undo the give-up
                note.given_up = False
            note.acknowledged = True
            note.acknowledged_at = record.at
            self._pending -= 1

    def _check_over(self, trade: Trade) -> None:
        if trade.refunded > trade.paid:
            self._over.add(trade.trade_no)
        else:
            self._over.discard(trade.trade_no)

    # -- reading ------------------------------------------------------------

    def pending_notifications(self) -> list[Notification]:
        """Notifications still to be delivered (neither acknowledged nor given up)."""
        return [n for n in self.notifications.values() if n.pending]

    def summary(self) -> dict[str, Any]:
        """Counts over the whole ledger, plus the two red flags tests look at.

        `double_executed`: executions repeating a (batch_no, trade_no) pair.
        `over_refunded`: trades whose executed refunds exceed the paid amount.
        """
        notes = self.notifications.values()
        return {
            "requests_refused": sum(self._refused.values()),
            "refused_by_code": dict(self._refused),
            "batches_accepted": len(self.batches),
            "items_accepted": self._items_accepted,
            "items_by_code": dict(self._item_codes),
            "refunds_executed": self._executed,
            "amount_executed": format_amount(self._amount_executed),
            "external_refunds": self._external_count,
            "trades": len(self.trades),
            "trades_refunded_more_than_once": self._multi_refunded,
            "notifications": {
                "total": len(self.notifications),
                "pending": self._pending,
                "acknowledged": sum(1 for n in notes if n.acknowledged),
                "given_up": sum(1 for n in notes if n.given_up),
                "sent": sum(n.sends for n in notes),
                "lost": sum(n.lost for n in notes),
                "forged_sent": sum(n.forged_sends for n in notes),
                "forged_acknowledged": sum(n.forged_acknowledged for n in notes),
            },
            "double_executed": list(self._double),
            "over_refunded": [
                {
                    "trade_no": t,
                    "paid": format_amount(self.trades[t].paid),
                    "refunded": format_amount(self.trades[t].refunded),
                }
                for t in sorted(self._over)
            ],
            "clock_offset_seconds": self.clock_offset,
        }

    def view(self, *, batch_no: str | None = None, trade_no: str | None = None) -> dict[str, Any]:
        """The ledger as JSON: batches, refused requests, trades, notifications.

        `batch_no` / `trade_no` narrow every section to that batch or trade.
        """
        batches = [b for b in self.batches.values() if batch_no in (None, b.record.batch_no)]
        if trade_no is not None:
            batches = [b for b in batches if any(item[0] == trade_no for item in b.record.items)]
        requests = [r for r in self.requests if batch_no in (None, r.batch_no)]
        if trade_no is not None:
            trades = [self.trades[trade_no]] if trade_no in self.trades else []
        elif batch_no is not None:
            wanted = {item[0] for b in batches for item in b.record.items}
            trades = [self.trades[t] for t in wanted if t in self.trades]
        else:
            trades = list(self.trades.values())
        wanted_batches = {b.record.batch_no for b in batches}
        notes = [
            n
            for n in self.notifications.values()
            if (batch_no is None and trade_no is None) or n.batch_no in wanted_batches
        ]
        return {
            "batches": [b.to_json() for b in batches],
            "refused": [
                {k: v for k, v in r.to_json().items() if k not in ("type", "ts")} for r in requests
            ],
            "trades": {t.trade_no: t.to_json() for t in trades},
            "notifications": {n.notify_id: n.to_json() for n in notes},
        }


def _only(record: ExternalRefundRecord, batch_no: str) -> ExternalRefundRecord:
    """`record` narrowed to the one external refund made under `batch_no`."""
    return replace(record, batch_nos=(batch_no,))
