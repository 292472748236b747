"""Applying what the gateway reports about a batch's items: one code path for every source.

A notification's `result_details` and a `refund_fastpay_query` answer both say,
per trade, what happened to the refund sent in a batch. `apply_reported` matches
them to the batch by `trade_no` (the shape of a reported trade number is never
judged), moves refunds only forward (`batched`/`submitted` to `succeeded`/`failed`),
writes their `refund.completed` outbox rows in the caller's transaction and records
where the result came from. A result code is whatever the gateway wrote: anything but
`SUCCESS` fails that item with the code verbatim; a code the worker does not know is
flagged, never a reason to refuse the result. What cannot be matched is flagged;
refunds the report does not settle stay waiting and go to reconciliation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

import structlog
from prometheus_client import Counter

from worker.adapters.postgres import ledger
from worker.adapters.postgres.pool import Connection
from worker.domain.states import BatchState, RefundState
from worker.mapi import classify
from worker.services.outcomes import record_completions

log = structlog.get_logger("worker.results")

RESULT_FLAGS = Counter(
    "refund_result_flags_total",
    "Things in gateway results that did not add up, by source and kind",
    ["source", "kind"],
)

SUCCESS = "SUCCESS"


@dataclass(frozen=True, slots=True)
class Reported:
    """One trade's result as the gateway reported it."""

    trade_no: str
    code: str  # verbatim, trimmed
    amount: Decimal | None = None
    raw: str = ""

    @property
    def succeeded(self) -> bool:
        # Codes are upper case; some gateways were seen lower-casing them.
        return self.code.upper() == SUCCESS


@dataclass(slots=True)
class Applied:
    """What applying a report did, and what in it did not add up."""

    completed: list[ledger.Completion] = field(default_factory=list)
    late: int = 0  # matched refunds that were final already
    strangers: list[str] = field(default_factory=list)  # trades not in the batch
    conflicting: list[str] = field(default_factory=list)  # trades reported twice, differently
    unknown_codes: list[str] = field(default_factory=list)
    amount_mismatches: list[str] = field(default_factory=list)
    still_open: list[str] = field(default_factory=list)  # refunds the report did not settle

    @property
    def problems(self) -> list[str]:
        out = []
        if self.strangers:
            out.append(f"{len(self.strangers)} items not in the batch")
        if self.conflicting:
            out.append(f"{len(self.conflicting)} trades reported twice with different codes")
        if self.unknown_codes:
            out.append(f"unknown result codes {sorted(set(self.unknown_codes))[:5]}")
        if self.amount_mismatches:
            out.append(f"{len(self.amount_mismatches)} amounts differ from what was sent")
        if self.still_open:
            out.append(f"{len(self.still_open)} refunds not settled by this report")
        return out


def apply_reported(
    conn: Connection, batch_no: str, reported: Sequence[Reported], *, source: str
) -> Applied:
    """Apply `reported` to `batch_no` inside the caller's transaction (batch row locked)."""
    log_ = log.bind(batch_no=batch_no, source=source)
    members = ledger.batch_members(conn, batch_no)
    result = Applied()
    chosen: dict[str, Reported] = {}
    for item in reported:
        trade_no = item.trade_no.strip()
        if trade_no not in members:
            result.strangers.append(trade_no)
            continue
        earlier = chosen.get(trade_no)
        if earlier is not None and earlier.code != item.code:
            result.conflicting.append(trade_no)
            continue
        chosen[trade_no] = item
    for trade_no in result.conflicting:
        chosen.pop(trade_no, None)

    outcomes: list[tuple[str, str, str]] = []
    for trade_no, item in chosen.items():
        member = members[trade_no]
        if item.amount is not None and item.amount != member.amount:
            result.amount_mismatches.append(trade_no)
        if not item.succeeded and classify(item.code) is None:
            result.unknown_codes.append(item.code)
        code = SUCCESS if item.succeeded else item.code
        outcomes.append(
            (
                member.refund_id,
                RefundState.SUCCEEDED if item.succeeded else RefundState.FAILED,
                code,
            )
        )

    result.completed = ledger.apply_results(conn, batch_no, outcomes, source=source)
    record_completions(conn, result.completed)
    result.late = len(outcomes) - len(result.completed)
    result.still_open = ledger.open_in_batch(conn, batch_no)

    if result.strangers:
        RESULT_FLAGS.labels(source, "item_not_in_batch").inc(len(result.strangers))
        log_.error("results.items_not_in_batch", trade_nos=result.strangers[:20])
    if result.conflicting:
        RESULT_FLAGS.labels(source, "conflicting_item").inc(len(result.conflicting))
        log_.error("results.conflicting_items", trade_nos=result.conflicting[:20])
    if result.unknown_codes:
        RESULT_FLAGS.labels(source, "unknown_code").inc(len(result.unknown_codes))
        log_.warning("results.unknown_code", codes=sorted(set(result.unknown_codes))[:20])
    if result.amount_mismatches:
        RESULT_FLAGS.labels(source, "amount_mismatch").inc(len(result.amount_mismatches))
        log_.error("results.amount_mismatch", trade_nos=result.amount_mismatches[:20])
    if result.late:
        log_.info("results.late_items", count=result.late)
    return result


def settle_batch(
    conn: Connection, batch_no: str, still_open: Sequence[str], *, at: datetime
) -> BatchState:
    """The batch's state after a report: the gateway holds it (it wrote about it), so it is
    `completed` when none of its refunds is left open, else `accepted` and left to
    reconciliation. No further attempt is ever due for it."""
    if still_open:
        ledger.update_batch(
            conn, batch_no, state=BatchState.ACCEPTED, next_attempt_at=None, maybe_sent=True
        )
        return BatchState.ACCEPTED
    ledger.update_batch(
        conn,
        batch_no,
        state=BatchState.COMPLETED,
        next_attempt_at=None,
        next_query_at=None,
        maybe_sent=True,
        completed_at=at,
    )
    return BatchState.COMPLETED
