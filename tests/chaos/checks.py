"""What must hold after a chaos scenario (README, "Fault-injection suite"), and the result line.

The checks read three independent witnesses: the refund ledger in PostgreSQL,
the sandbox gateway's own books (what was actually paid, by mapi batches and by the
OpenAPI channels: `tests.chaos.openapi_books`), and the refund.completed events a
consumer saw on the bus. Every breach becomes a human-readable violation;
the counts go into the result line.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from tests.chaos.load import Load
from tests.chaos.openapi_books import OpenApiState, check_openapi_payments
from worker.adapters.rabbitmq import HEADER_REASON
from worker.contracts.events import completed_event_id
from worker.services.ports import Delivery

FINAL = ("succeeded", "failed", "rejected")
RELEASED = ("refused", "abandoned")
CLOSED_BATCH = ("completed", *RELEASED)
REJECTION_CODES = ("REFUND_COUNT_EXCEEDED", "REFUND_TOTAL_EXCEEDS_TRADE_AMOUNT")


@dataclass
class FinalState:
    """Everything the checks look at, gathered once the run has settled (or timed out)."""

    refunds: dict[
        str, tuple[str, str | None, str | None, str, Decimal]
    ]  # state, code, batch, trade, amount
    batches: dict[str, tuple[str, bool, str | None, str | None]]  # state, maybe_sent, error, flag
    memberships: dict[str, list[str]]  # refund_id -> batch_nos it was ever in
    outbox: int
    events: dict[str, list[dict[str, Any]]]
    dead_letters: list[Delivery]
    queue_depths: dict[str, int]
    executions: dict[str, list[tuple[str, Decimal]]]  # trade_no -> (batch_no, amount)
    sandbox_summary: dict[str, Any]
    publish_attempts: Counter[str]
    openapi: OpenApiState = field(default_factory=OpenApiState)


@dataclass
class Result:
    scenario: str
    profile: str
    refunds: int
    seconds: float
    lost: int = 0
    double_paid: int = 0
    duplicate_event_ids: int = 0
    redelivered_events: int = 0
    dead_lettered: int = 0
    disruptions: int = 0
    violations: list[str] = field(default_factory=list)
    notes: dict[str, object] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not self.violations

    def line(self) -> str:
        extra = " ".join(f"{k}={v}" for k, v in self.notes.items())
        return (
            f"scenario={self.scenario} refunds={self.refunds} lost={self.lost}"
            f" double_paid={self.double_paid} duplicate_event_ids={self.duplicate_event_ids}"
            f" redelivered_events={self.redelivered_events} dead_lettered={self.dead_lettered}"
            f" seconds={self.seconds:.1f} profile={self.profile}"
            f" disruptions={self.disruptions}"
            + (f" {extra}" if extra else "")
            + f" violations={len(self.violations)}"
        )


def _sample(items: object, n: int = 5) -> str:
    values = sorted(items) if isinstance(items, set | frozenset | list | dict) else items
    return ", ".join(str(v) for v in list(values)[:n])  # type: ignore[call-overload]


def check(
    result: Result, load: Load, final: FinalState, *, allowed_failures: frozenset[str]
) -> None:
    """Fill `result` with the counts and the violations of what must hold (module docstring)."""
    unfinished = _outcomes(result, load, final, allowed_failures)
    silent = _events(result, load, final)
    result.lost = len(unfinished | silent)
    _payments(result, final)
    check_openapi_payments(result, final.openapi)
    _batches(result, final)
    _dead_letters(result, load, final)
    _leftovers(result, final)


def _outcomes(
    result: Result, load: Load, final: FinalState, allowed_failures: frozenset[str]
) -> set[str]:
    """No refund lost, one outcome each: every valid refund stored, final, with an allowed outcome.

    Returns the refunds that are not final (never stored, or left waiting).
    """
    missing = {r for r in load.valid if r not in final.refunds}
    open_ = {r for r in load.valid if r in final.refunds and final.refunds[r][0] not in FINAL}
    unexpected = set(final.refunds) - set(load.valid)
    if missing:
        result.violations.append(f"{len(missing)} valid refunds never stored: {_sample(missing)}")
    if open_:
        states = Counter(final.refunds[r][0] for r in open_)
        result.violations.append(
            f"{len(open_)} refunds left waiting {dict(states)}: {_sample(open_)}"
        )
    if unexpected:
        result.violations.append(f"{len(unexpected)} refunds stored from invalid input")

    rejected_by_trade: Counter[str] = Counter()
    wrong_outcome: list[str] = []
    for refund_id in load.valid:
        row = final.refunds.get(refund_id)
        if row is None:
            continue
        state, code, _, trade, _ = row
        if state == "rejected":
            rejected_by_trade[trade] += 1
            expected = load.rejections.get(trade)
            if expected is None or code != expected[1]:
                wrong_outcome.append(f"{refund_id} rejected {code}")
        elif state == "failed" and code not in allowed_failures:
            wrong_outcome.append(f"{refund_id} failed {code}")
    states = Counter(row[0] for rid, row in final.refunds.items() if rid in load.valid)
    result.notes["failed"] = states["failed"]
    result.notes["rejected"] = states["rejected"]
    if wrong_outcome:
        result.violations.append(
            f"{len(wrong_outcome)} refunds ended with an outcome nothing called for:"
            f" {_sample(wrong_outcome)}"
        )
    for trade, (count, code) in load.rejections.items():
        if rejected_by_trade[trade] != count:
            result.violations.append(
                f"trade {trade}: {rejected_by_trade[trade]} refunds rejected, expected {count}"
                f" ({code})"
            )
    return missing | open_


def _events(result: Result, load: Load, final: FinalState) -> set[str]:
    """One event identity per refund on the bus, agreeing with the ledger.

    Returns the valid refunds that have no event at all.
    """
    no_event = {r for r in load.valid if not final.events.get(r)}
    if no_event:
        result.violations.append(
            f"{len(no_event)} refunds without a refund.completed event: {_sample(no_event)}"
        )
    strangers = set(final.events) - set(load.valid)
    if strangers:
        result.violations.append(
            f"events for {len(strangers)} unknown refunds: {_sample(strangers)}"
        )
    duplicates = 0
    disagreeing = []
    for refund_id, events in final.events.items():
        if refund_id not in load.valid:
            continue
        ids = {e.get("event_id") for e in events}
        if ids != {completed_event_id(refund_id)}:
            duplicates += 1
        shapes = {(e.get("status"), e.get("code"), e.get("batch_no")) for e in events}
        row = final.refunds.get(refund_id)
        if len(shapes) > 1 or (row is not None and shapes != {(row[0], row[1] or "", row[2])}):
            disagreeing.append(refund_id)
    result.duplicate_event_ids = duplicates
    if duplicates:
        result.violations.append(f"{duplicates} refunds with more than one event_id")
    if disagreeing:
        result.violations.append(
            f"{len(disagreeing)} refunds whose events disagree with each other or the ledger:"
            f" {_sample(disagreeing)}"
        )
    result.redelivered_events = sum(len(v) for v in final.events.values()) - len(final.events)
    return no_event


def _payments(result: Result, final: FinalState) -> None:
    """No refund paid twice, from the gateway's books: each trade paid what the ledger says.

    An execution must match a refund the ledger has as succeeded in that batch, or one
    still open in that batch (paid, its result not known yet: reported as waiting).
    Anything else is money out that the ledger cannot account for: paid twice.
    """
    succeeded: dict[str, Counter[tuple[str, Decimal]]] = defaultdict(Counter)
    pending: dict[str, Counter[tuple[str, Decimal]]] = defaultdict(Counter)
    for state, _code, batch_no, trade, amount in final.refunds.values():
        if batch_no is None:
            continue
        if state == "succeeded":
            succeeded[trade][(batch_no, amount)] += 1
        elif state not in FINAL:
            pending[trade][(batch_no, amount)] += 1
    excess = phantom = unconfirmed = 0
    for trade in set(succeeded) | set(final.executions):
        executed = Counter(final.executions.get(trade, []))
        recorded = succeeded.get(trade, Counter())
        beyond = executed - recorded
        waiting = beyond & pending.get(trade, Counter())
        unconfirmed += sum(waiting.values())
        excess += sum((beyond - waiting).values())
        phantom += sum((recorded - executed).values())
    doubles = final.sandbox_summary.get("double_executed") or []
    over = final.sandbox_summary.get("over_refunded") or []
    result.double_paid += excess + len(doubles)
    if unconfirmed:
        result.notes["paid_not_yet_known"] = unconfirmed
    if excess:
        result.violations.append(f"the gateway executed {excess} refunds the ledger does not hold")
    if phantom:
        result.violations.append(f"{phantom} refunds succeeded in the ledger but were never paid")
    if doubles:
        result.violations.append(f"sandbox double_executed: {doubles[:5]}")
    if over:
        result.violations.append(f"sandbox over_refunded: {over[:5]}")


def _batches(result: Result, final: FinalState) -> None:
    """A refund in several batches: all but one refused/abandoned and certainly never sent."""
    live_twice = []
    wrong_home = []
    for refund_id, batch_nos in final.memberships.items():
        live = [
            b
            for b in batch_nos
            if not (final.batches[b][0] in RELEASED and not final.batches[b][1])
        ]
        if len(live) > 1:
            live_twice.append(refund_id)
        row = final.refunds.get(refund_id)
        if row is not None and row[0] in ("succeeded", "failed") and live and row[2] != live[-1]:
            wrong_home.append(refund_id)
    if live_twice:
        result.double_paid += len(live_twice)
        result.violations.append(
            f"{len(live_twice)} refunds in two batches the gateway could both have accepted:"
            f" {_sample(live_twice)}"
        )
    if wrong_home:
        result.violations.append(
            f"{len(wrong_home)} refunds finished under a batch other than their live one"
        )
    open_batches = Counter(s for s, *_ in final.batches.values() if s not in CLOSED_BATCH)
    if open_batches:
        result.violations.append(f"batches left open: {dict(open_batches)}")


def _dead_letters(result: Result, load: Load, final: FinalState) -> None:
    """Every invalid message dead-lettered with its reason, every valid one not at all."""
    result.dead_lettered = len(final.dead_letters)
    expected = load.expected_dead
    got: dict[str, list[str]] = defaultdict(list)
    for letter in final.dead_letters:
        got[str(letter.message_id)].append(str(letter.headers.get(HEADER_REASON)))
    missing = [m for m in expected if m not in got]
    wrong = [m for m in expected if m in got and set(got[m]) != {expected[m]}]
    too_many = [m for m in expected if len(got.get(m, [])) > final.publish_attempts.get(m, 1)]
    unexpected = {m: r for m, r in got.items() if m not in expected}
    if missing:
        result.violations.append(
            f"{len(missing)} invalid messages not dead-lettered: {missing[:5]}"
        )
    if wrong:
        result.violations.append(
            f"{len(wrong)} dead-lettered with the wrong reason, e.g. "
            + ", ".join(f"{m}: {got[m]} (expected {expected[m]})" for m in wrong[:3])
        )
    if too_many:
        result.violations.append(f"{len(too_many)} dead-lettered more often than published")
    if unexpected:
        result.violations.append(
            f"{len(unexpected)} valid messages dead-lettered: "
            + ", ".join(f"{m}: {r}" for m, r in list(unexpected.items())[:5])
        )


def _leftovers(result: Result, final: FinalState) -> None:
    """Queues and the outbox empty at the end."""
    if final.outbox:
        result.violations.append(f"{final.outbox} rows left in the outbox")
    full = {q: n for q, n in final.queue_depths.items() if n}
    if full:
        result.violations.append(f"queues not empty at the end: {full}")
