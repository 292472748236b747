"""Reconciliation: ask the gateway (`refund_fastpay_query`) what it did with a batch.

A batch the gateway may hold (accepted, or its outcome unknown) whose notification
has not settled it `RECONCILE_AFTER_SECONDS` after its last attempt is queried by
`batch_no`, then again on the growing schedule of `worker.domain.policy.next_query_delay`.
Whatever the answer shows is applied exactly as a notification's result would be
(`worker.services.results`, source `query`); a later notification for the same
items changes nothing. Every answer is stored (`batch_queries`) as evidence.

Releasing a batch the gateway never took (its refunds back to pending, under a new
batch_no later) happens only under `worker.domain.policy.decide_release`, and never for a
batch approved on the password service (its form went to a browser: it is flagged
`approved_not_notified` for an operator's `resolve` instead): the batch's
Beijing day is over and at least two queries by batch_no, the last one long enough
after the last attempt, answered `REFUND_NOT_EXIST`. A `DUPLICATE_BATCH_NO` answer to
a first attempt is settled by the same query: if it shows our trades under the number,
the batch was ours and is applied; if it lists only other trades, the number was used
by another batch and the refunds are re-batched at once; if it lists nothing, the batch
may still be in progress at the gateway, so it waits for the release rule.

The sweep (`claim_due`) runs in the scheduler and hands batch numbers to the
`reconcile_batch` job, so a slow gateway never holds up packing; the claim pushes the
batch's next query time forward, so several schedulers and workers are safe.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

import structlog
from prometheus_client import Counter

from worker.adapters.postgres import ledger
from worker.adapters.postgres.pool import Connection, Database
from worker.domain.policy import decide_release, next_query_delay
from worker.domain.rules import MAX_REFUNDS_PER_TRADE, REFUND_COUNT_EXCEEDED
from worker.domain.states import BatchState, RefundState
from worker.mapi import BEIJING
from worker.services.outcomes import record_completions
from worker.services.ports import QueriedItem, QueryResult, RefundQueries, RefundQuery
from worker.services.results import Applied, Reported, apply_reported, settle_batch

log = structlog.get_logger("worker.reconcile")

Clock = Callable[[], datetime]

QUERIES = Counter(
    "refund_reconcile_queries_total",
    "refund_fastpay_query answers, by merchant (partner id), purpose and answer",
    ["merchant", "purpose", "answer"],
)
RELEASES = Counter(
    "refund_batches_released_total",
    "Batches whose refunds were released because the gateway proved it never took them",
    ["why"],
)

DUPLICATE_FLAG = "duplicate_batch_no_unverified"
# An approved batch (password service) the gateway shows nothing for after its Beijing day.
APPROVED_NOT_NOTIFIED = "approved_not_notified"
# A batch of a merchant this deployment no longer serves is looked at again this much later.
NOT_SERVED_RETRY_SECONDS = 3600.0

# How long a claimed query may take before another reconciler may ask again.
QUERY_LEASE_SECONDS = 120.0
# Trades queried one by one per reconciliation when a batch answer leaves refunds out.
MAX_TRADE_QUERIES = 20


@dataclass(slots=True)
class ReconcileReport:
    batch_no: str
    answer: str = "skipped"
    state_before: str | None = None
    state_after: str | None = None
    completed: int = 0
    released: int = 0
    changes: list[str] = field(default_factory=list)


def claim_due(db: Database, *, reconcile_after: float, limit: int = 100) -> list[str]:
    """Batches whose query is due, claimed for this reconciler."""
    with db.transaction() as conn:
        return ledger.claim_due_queries(
            conn, reconcile_after=reconcile_after, lease=QUERY_LEASE_SECONDS, limit=limit
        )


def reconcile_batch(
    db: Database,
    gateways: RefundQueries,
    batch_no: str,
    *,
    clock: Clock,
    release_after_seconds: float,
    purpose: str = "reconcile",
) -> ReconcileReport:
    """Query `batch_no` once and apply what the answer proves; returns what changed."""
    report = ReconcileReport(batch_no)
    with db.transaction() as conn:
        batch = ledger.lock_batch_view(conn, batch_no)
        if batch is None:
            report.changes.append("no such batch")
            return report
        report.state_before = report.state_after = batch.state
        if batch.state not in ledger.RECONCILABLE and purpose == "reconcile":
            report.changes.append(f"batch is {batch.state}: nothing to reconcile")
            return report
        gateway = gateways(batch.partner)
        if gateway is None:
            # Asked with another merchant's key the gateway would answer for that merchant.
            ledger.schedule_query(conn, batch_no, NOT_SERVED_RETRY_SECONDS)
            log.error("reconcile.merchant_not_served", batch_no=batch_no, merchant=batch.partner)
            report.changes.append(f"merchant {batch.partner} is not served: not asked")
            return report

    result = gateway.query_refunds(batch_no=batch_no)
    asked_at = clock()
    QUERIES.labels(batch.partner, purpose, result.answer).inc()
    report.answer = (
        result.answer if result.error_code is None else f"{result.answer}:{result.error_code}"
    )
    ours = [i for i in result.items if i.batch_no in (None, batch_no)]
    log_ = log.bind(batch_no=batch_no, merchant=batch.partner, purpose=purpose)
    by_trade = _ask_for_missing_trades(db, gateway, batch, result, ours, log_)
    log_.info(
        "reconcile.answer",
        answer=result.answer,
        error_code=result.error_code,
        items=len(ours),
        detail=result.detail[:200] or None,
    )
    with db.transaction() as conn:
        ledger.record_query(
            conn,
            batch_no=batch_no,
            trade_no=None,
            purpose=purpose,
            answer=result.answer,
            error_code=result.error_code,
            items=[{"trade_no": i.trade_no, "code": i.code, "raw": i.raw[:200]} for i in ours],
            detail=result.detail[:500] or None,
            asked_at=asked_at,
            complete=result.complete,
        )
        batch = ledger.lock_batch_view(conn, batch_no)
        assert batch is not None
        if batch.state not in ledger.RECONCILABLE:
            report.state_after = batch.state
            report.changes.append(f"batch became {batch.state} meanwhile: answer recorded only")
            return report
        _settle(conn, batch, result, ours, report, clock(), release_after_seconds, log_)
        if by_trade:
            _settle_missing(conn, batch, by_trade, report, clock(), release_after_seconds, log_)
    return report


def _ask_for_missing_trades(
    db: Database,
    gateway: RefundQuery,
    batch: ledger.BatchView,
    result: QueryResult,
    ours: Sequence[QueriedItem],
    log_: structlog.typing.FilteringBoundLogger,
) -> dict[str, QueryResult]:
    """Query by trade_no the open refunds a complete answer about their batch left out.

    Alipay silently skips the refund of a trade that has had 99 refunds already,
    counting refunds made outside this worker; only a query by trade shows them.
    """
    batch_no, partner = batch.batch_no, batch.partner
    if result.answer != "found" or not result.complete:
        return {}
    listed = {i.trade_no.strip() for i in ours}
    with db.transaction() as conn:
        open_ids = set(ledger.open_in_batch(conn, batch_no))
        members = ledger.batch_members(conn, batch_no)
    missing = sorted(t for t, m in members.items() if m.refund_id in open_ids and t not in listed)[
        :MAX_TRADE_QUERIES
    ]
    answers = {t: gateway.query_refunds(trade_no=t) for t in missing}
    for trade_no, answer in answers.items():
        QUERIES.labels(partner, "trade", answer.answer).inc()
        log_.info("reconcile.trade_answer", trade_no=trade_no, answer=answer.answer)
    return answers


def _settle_missing(
    conn: Connection,
    batch: ledger.BatchView,
    by_trade: dict[str, QueryResult],
    report: ReconcileReport,
    now: datetime,
    release_after_seconds: float,
    log_: structlog.typing.FilteringBoundLogger,
) -> None:
    """Refunds the gateway left out of a batch: count what it reports for their trades,
    and, under the release rule applied to that one item, fail a refund the gateway
    skipped for the 99-refund limit or release it for a new batch."""
    batch_no = batch.batch_no
    members = ledger.batch_members(conn, batch_no)
    open_ids = set(ledger.open_in_batch(conn, batch_no))
    history = ledger.queries_since(conn, batch_no, batch.last_attempt_at)
    foreign: list[tuple[str, str, Decimal, str]] = []
    for trade_no, answer in by_trade.items():
        entries = [i for i in answer.items if i.trade_no.strip() == trade_no and i.batch_no]
        known = ledger.our_batch_nos(conn, [str(i.batch_no) for i in entries])
        foreign += [
            (trade_no, str(i.batch_no), i.amount or Decimal(0), i.code)
            for i in entries
            if i.batch_no not in known and i.code.upper() == "SUCCESS"
        ]
    if foreign:
        ledger.record_gateway_refunds(conn, foreign)
        report.changes.append(f"{len(foreign)} refunds made outside this worker counted")
        log_.warning("reconcile.refunds_made_elsewhere", count=len(foreign))

    failed: list[tuple[str, str, str]] = []
    released: list[str] = []
    for trade_no, answer in by_trade.items():
        member = members.get(trade_no)
        if member is None or member.refund_id not in open_ids:
            continue
        if answer.answer != "found" or not answer.complete:
            continue  # the trade query proved nothing
        if any(i.batch_no == batch_no for i in answer.items):
            continue  # listed under this batch after all: the next batch query applies it
        item_answers = [(q.asked_at, _for_item(q, trade_no)) for q in history]
        decision = decide_release(
            batch_day=batch.batch_day,
            today=now.astimezone(BEIJING).date(),
            last_attempt_at=batch.last_attempt_at or batch.created_at,
            answers=item_answers,
            now=now,
            release_after_seconds=release_after_seconds,
        )
        if not decision.release:
            continue
        refunded = sum(1 for i in answer.items if i.code.upper() == "SUCCESS")
        if refunded >= MAX_REFUNDS_PER_TRADE:
            failed.append((member.refund_id, RefundState.FAILED, REFUND_COUNT_EXCEEDED))
        else:
            released.append(member.refund_id)
    if failed:
        completed = ledger.finish_refunds(conn, batch_no, failed, source="query")
        record_completions(conn, completed)
        report.completed += len(completed)
        report.changes.append(
            f"{len(completed)} refunds failed: the gateway skipped them at the 99-refund limit"
        )
        log_.error("reconcile.skipped_at_refund_limit", refunds=len(completed))
    if released:
        moved = ledger.return_to_pending(conn, batch_no, released, include_submitted=True)
        RELEASES.labels("item_not_exist").inc(len(moved))
        report.released += len(moved)
        report.changes.append(f"released {len(moved)} refunds the gateway never took")
        log_.warning("batch.items_released", refunds=len(moved))
    if failed or released:
        report.state_after = settle_batch(
            conn, batch_no, ledger.open_in_batch(conn, batch_no), at=now
        )


def _for_item(query: ledger.QueryRecord, trade_no: str) -> str:
    """A batch query's answer as evidence about one of its trades."""
    if query.answer == "found":
        if trade_no in query.trade_nos:
            return "found"
        return "not_found" if query.complete else "no_answer"
    return query.answer


def _settle(
    conn: Connection,
    batch: ledger.BatchView,
    result: QueryResult,
    ours: Sequence[QueriedItem],
    report: ReconcileReport,
    now: datetime,
    release_after_seconds: float,
    log_: structlog.typing.FilteringBoundLogger,
) -> None:
    batch_no = batch.batch_no
    members = ledger.batch_members(conn, batch_no)
    matching = [i for i in ours if i.trade_no.strip() in members]
    duplicate_check = batch.operator_flag == DUPLICATE_FLAG

    if duplicate_check and not matching and result.answer == "found" and result.complete:
        # DUPLICATE_BATCH_NO on a first attempt, and the gateway lists other trades, and
        # none of ours, under that number: it was used by another batch (a restored
        # database), so ours never went out under it. An answer listing nothing proves
        # less (a batch still being processed lists nothing yet): that case waits for
        # the release rule like any batch that may have been sent.
        _release(conn, batch_no, report, why="duplicate_not_ours", log_=log_)
        return

    if matching:
        reported = [Reported(i.trade_no.strip(), i.code, i.amount, i.raw) for i in matching]
        applied = apply_reported(conn, batch_no, reported, source="query")
        _note_applied(conn, batch_no, applied, report, now)
        if duplicate_check:
            ledger.update_batch(conn, batch_no, operator_flag=None)
        if not applied.still_open:
            return
    elif result.answer == "found":
        report.changes.append("answer shows none of this batch's trades")

    history = ledger.queries_since(conn, batch_no, batch.last_attempt_at)
    decision = decide_release(
        batch_day=batch.batch_day,
        today=now.astimezone(BEIJING).date(),
        last_attempt_at=batch.last_attempt_at or batch.created_at,
        answers=[(q.asked_at, q.answer) for q in history],
        now=now,
        release_after_seconds=release_after_seconds,
    )
    if decision.release and not matching:
        if batch.state == BatchState.APPROVED:
            # Its form went to an operator's browser: only a person may conclude it was
            # never posted (`resolve`), never this rule on its own.
            if batch.operator_flag != APPROVED_NOT_NOTIFIED:
                ledger.flag_batch(conn, batch_no, APPROVED_NOT_NOTIFIED)
                log_.error("batch.approved_not_notified", reason=decision.reason)
            report.changes.append("approved, and the gateway shows nothing: an operator decides")
        else:
            _release(conn, batch_no, report, why="not_exist", log_=log_)
            return
    delay = next_query_delay(batch.queries + 1)
    ledger.schedule_query(conn, batch_no, delay)
    report.changes.append(f"still waiting ({decision.reason}); next query in {delay:g} s")


def _note_applied(
    conn: Connection, batch_no: str, applied: Applied, report: ReconcileReport, now: datetime
) -> None:
    report.completed += len(applied.completed)
    if applied.completed:
        report.changes.append(f"{len(applied.completed)} refunds completed from the query")
    report.state_after = settle_batch(conn, batch_no, applied.still_open, at=now)


def _release(
    conn: Connection,
    batch_no: str,
    report: ReconcileReport,
    *,
    why: str,
    log_: structlog.typing.FilteringBoundLogger,
) -> None:
    released = ledger.return_to_pending(conn, batch_no, include_submitted=True)
    ledger.update_batch(
        conn,
        batch_no,
        state=BatchState.RELEASED,
        next_attempt_at=None,
        next_query_at=None,
        last_error=f"released: {why}",
    )
    RELEASES.labels(why).inc()
    report.released = len(released)
    report.state_after = "released"
    report.changes.append(f"released {len(released)} refunds for a new batch ({why})")
    log_.warning("batch.released", why=why, refunds=len(released))
