"""The fault suite's checks catch what they are there to catch (synthetic final states)."""

from __future__ import annotations

import random
from collections import Counter
from decimal import Decimal
from typing import Any

import pytest

from tests.chaos.broken import BREAKERS, add_bad_input
from tests.chaos.checks import FinalState, Result, check
from tests.chaos.load import Load, add_conflicts, good_load
from worker.adapters.rabbitmq import HEADER_REASON
from worker.contracts.events import completed_event_id, parse_refund_requested
from worker.domain.errors import EventValidationError
from worker.services.ports import Delivery

BATCH = "20260301000000000001"
OTHER = "20260301000000000002"


def load_of(n: int = 3) -> Load:
    return good_load(random.Random(1), refunds=n, trades=n, tag=9, prefix="t")


def event(
    refund_id: str, status: str = "succeeded", batch_no: str | None = BATCH
) -> dict[str, Any]:
    code = "SUCCESS" if status == "succeeded" else "X"
    return {
        "event_id": completed_event_id(refund_id),
        "refund_id": refund_id,
        "status": status,
        "code": code,
        "batch_no": batch_no,
    }


def healthy(load: Load) -> FinalState:
    refunds = {
        rid: ("succeeded", "SUCCESS", BATCH, str(r["trade_no"]), Decimal(r["amount"]))
        for rid, r in load.valid.items()
    }
    executions: dict[str, list[tuple[str, Decimal]]] = {}
    for _, _, batch_no, trade, amount in refunds.values():
        executions.setdefault(trade, []).append((str(batch_no), amount))
    return FinalState(
        refunds=refunds,
        batches={BATCH: ("completed", True, None, None)},
        memberships={rid: [BATCH] for rid in refunds},
        outbox=0,
        events={rid: [event(rid)] for rid in refunds},
        dead_letters=[],
        queue_depths={"q": 0},
        executions=executions,
        sandbox_summary={"double_executed": [], "over_refunded": []},
        publish_attempts=Counter(),
    )


def run_checks(load: Load, final: FinalState) -> Result:
    result = Result("unit", "short", len(load.valid), 1.0)
    check(result, load, final, allowed_failures=frozenset())
    return result


def test_a_clean_run_passes() -> None:
    load = load_of()
    result = run_checks(load, healthy(load))
    assert result.passed, result.violations
    assert (result.lost, result.double_paid, result.duplicate_event_ids) == (0, 0, 0)


def test_repeated_events_of_one_identity_are_counted_not_failed() -> None:
    load = load_of()
    final = healthy(load)
    rid = next(iter(load.valid))
    final.events[rid].append(event(rid))
    result = run_checks(load, final)
    assert result.passed and result.redelivered_events == 1


def test_a_refund_paid_twice_by_the_gateway_is_double_paid() -> None:
    load = load_of()
    final = healthy(load)
    trade, paid = next(iter(final.executions.items()))
    final.executions[trade] = [*paid, (OTHER, paid[0][1])]
    result = run_checks(load, final)
    assert result.double_paid == 1 and not result.passed


def test_paid_but_not_yet_known_is_waiting_not_double_paid() -> None:
    load = load_of()
    final = healthy(load)
    rid = next(iter(load.valid))
    row = final.refunds[rid]
    final.refunds[rid] = ("submitted", None, BATCH, row[3], row[4])
    result = run_checks(load, final)
    assert result.double_paid == 0 and result.lost == 1
    assert result.notes["paid_not_yet_known"] == 1


def test_paid_although_the_ledger_says_failed_is_double_paid() -> None:
    load = load_of()
    final = healthy(load)
    rid = next(iter(load.valid))
    row = final.refunds[rid]
    final.refunds[rid] = ("failed", "SELLER_BALANCE_NOT_ENOUGH", BATCH, row[3], row[4])
    final.events[rid] = [dict(event(rid, "failed"), code="SELLER_BALANCE_NOT_ENOUGH")]
    result = Result("unit", "short", len(load.valid), 1.0)
    check(result, load, final, allowed_failures=frozenset({"SELLER_BALANCE_NOT_ENOUGH"}))
    assert result.double_paid == 1


def test_two_live_batches_for_one_refund_are_double_paid() -> None:
    load = load_of()
    final = healthy(load)
    rid = next(iter(load.valid))
    final.batches[OTHER] = ("unknown", True, None, None)
    final.memberships[rid] = [OTHER, BATCH]
    assert run_checks(load, final).double_paid == 1
    # ...unless the other batch certainly never reached the gateway.
    final.batches[OTHER] = ("refused", False, None, None)
    assert run_checks(load, final).passed


def test_a_success_the_gateway_never_paid_is_a_violation() -> None:
    load = load_of()
    final = healthy(load)
    final.executions.pop(next(iter(final.executions)))
    result = run_checks(load, final)
    assert any("never paid" in v for v in result.violations)


def test_waiting_and_silent_refunds_are_lost() -> None:
    load = load_of(4)
    final = healthy(load)
    waiting, silent, gone = list(load.valid)[:3]
    row = final.refunds[waiting]
    final.refunds[waiting] = ("submitted", None, BATCH, row[3], row[4])
    final.events.pop(silent)
    del final.refunds[gone]
    result = run_checks(load, final)
    assert result.lost == 3


def test_a_second_event_identity_is_a_duplicate() -> None:
    load = load_of()
    final = healthy(load)
    rid = next(iter(load.valid))
    final.events[rid].append(dict(event(rid), event_id="another"))
    assert run_checks(load, final).duplicate_event_ids == 1


def test_events_must_agree_with_the_ledger() -> None:
    load = load_of()
    final = healthy(load)
    rid = next(iter(load.valid))
    final.events[rid] = [event(rid, status="failed")]
    assert any("disagree" in v for v in run_checks(load, final).violations)


def delivery(message_id: str, reason: str) -> Delivery:
    return Delivery(1, b"", message_id, {HEADER_REASON: reason}, False, None, "refund.requested")


def test_dead_letters_are_matched_to_the_broken_messages() -> None:
    load = load_of()
    add_bad_input(load, random.Random(2), count=3, tag=9, large=0)
    final = healthy(load)
    expected = load.expected_dead
    final.dead_letters = [delivery(m, r) for m, r in expected.items()]
    assert run_checks(load, final).passed
    final.dead_letters[0] = delivery(final.dead_letters[0].message_id or "", "handler_error")
    final.dead_letters.append(delivery(next(iter(load.valid.values()))["event_id"], "x"))
    violations = run_checks(load, final).violations
    assert any("wrong reason" in v for v in violations)
    assert any("valid messages dead-lettered" in v for v in violations)


def test_leftovers_fail_the_run() -> None:
    load = load_of()
    final = healthy(load)
    final.outbox = 2
    final.queue_depths = {"submit": 1}
    assert len(run_checks(load, final).violations) == 2


@pytest.mark.parametrize("name", sorted(BREAKERS))
def test_every_breaker_gets_the_reason_the_contract_names(name: str) -> None:
    """The load's expectations agree with the event contract as the worker implements it."""
    rng = random.Random(name)
    for _ in range(20):
        doc = dict(next(iter(load_of(1).valid.values())))
        body, reason = BREAKERS[name](rng, doc)
        with pytest.raises(EventValidationError) as caught:
            parse_refund_requested(body)
        assert caught.value.reason == reason, body[:200]


def test_conflicts_and_resends_keep_the_first_request_first() -> None:
    rng = random.Random(3)
    load = good_load(rng, refunds=50, trades=10, tag=9, prefix="t", resend=0.5)
    add_conflicts(load, rng, count=10)
    load.shuffle_tail(rng, 0)
    seen: set[str] = set()
    originals = {str(r["event_id"]) for r in load.valid.values()}
    for message in load.messages:
        if message.message_id in originals:
            seen.add(str(message.refund_id))
        elif message.refund_id is not None:
            assert message.refund_id in seen, message.message_id
