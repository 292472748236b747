"""The submission decisions of worker.policy: invariant 1 and DESIGN 4.6, case by case."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.mapi import SyncResponse, SyncStatus
from worker.policy import (
    MAX_BATCHES_PER_REFUND,
    RETRY_CAP_SECONDS,
    Action,
    Attempt,
    Outcome,
    decide,
    decide_before_send,
    retry_delay,
)


def refused(code: str) -> Attempt:
    return Attempt(Outcome.ANSWERED, SyncResponse(SyncStatus.REFUSED, code, ""))


def run(
    attempt: Attempt,
    *,
    maybe_sent: bool = False,
    attempts: int = 1,
    items: int = 10,
    refund_batches: int = 1,
) -> Action:
    return decide(
        attempt,
        maybe_sent_before=maybe_sent,
        attempts=attempts,
        item_count=items,
        refund_batches=refund_batches,
    ).action


def test_accepted_and_processing_mean_accepted() -> None:
    assert (
        run(Attempt(Outcome.ANSWERED, SyncResponse(SyncStatus.ACCEPTED, None, "")))
        is Action.ACCEPTED
    )
    assert (
        run(Attempt(Outcome.ANSWERED, SyncResponse(SyncStatus.PROCESSING, None, "")))
        is Action.ACCEPTED
    )


def test_unknown_outcomes_retry_under_the_same_batch_no() -> None:
    assert run(Attempt(Outcome.UNKNOWN, error="read timeout")) is Action.RETRY_SAME
    assert run(Attempt(Outcome.NOT_SENT, error="refused")) is Action.RETRY_SAME
    garbage = Attempt(Outcome.ANSWERED, SyncResponse(SyncStatus.UNKNOWN, None, "html"))
    assert run(garbage) is Action.RETRY_SAME


def test_duplicate_batch_no_after_unknown_outcome_means_accepted() -> None:
    assert run(refused("DUPLICATE_BATCH_NO"), maybe_sent=True, attempts=2) is Action.ACCEPTED


@pytest.mark.parametrize("items", [1, 10])
def test_duplicate_batch_no_on_a_first_attempt_is_verified_by_a_query(items: int) -> None:
    # The number may have been ours (a restored database, a replayed POST): never renumber
    # before a query of that batch_no has shown whose it was.
    decision = decide(
        refused("DUPLICATE_BATCH_NO"),
        maybe_sent_before=False,
        attempts=1,
        item_count=items,
        refund_batches=1,
    )
    assert decision.action is Action.VERIFY_DUPLICATE
    assert decision.operator_flag == "duplicate_batch_no_unverified"
    assert decision.code == "DUPLICATE_BATCH_NO"


def test_duplicate_batch_no_after_definite_refusals_is_left_to_an_operator() -> None:
    decision = decide(
        refused("DUPLICATE_BATCH_NO"),
        maybe_sent_before=False,
        attempts=3,
        item_count=5,
        refund_batches=1,
    )
    assert decision.action is Action.WAIT_NOTIFY
    assert decision.operator_flag == "duplicate_batch_no_ambiguous"


def test_lock_error_retries_later_with_the_same_batch_no() -> None:
    assert run(refused("BATCH_REFUND_LOCK_ERROR")) is Action.RETRY_SAME


@pytest.mark.parametrize("code", ["ILLEGAL_SIGN", "ILLEGAL_PARTNER", "HAS_NO_PRIVILEGE"])
def test_configuration_errors_halt_submission(code: str) -> None:
    decision = decide(
        refused(code), maybe_sent_before=False, attempts=1, item_count=3, refund_batches=1
    )
    assert decision.action is Action.HALT
    assert decision.code == code


def test_a_refusal_after_an_unknown_outcome_never_releases_the_items() -> None:
    for code in ("ILLEGAL_ARGUMENT", "TRADE_STATUS_ERROR", "SOMETHING_NEW"):
        assert run(refused(code), maybe_sent=True, attempts=2) is Action.WAIT_NOTIFY


def test_item_level_refusal_splits_then_fails_the_single_item() -> None:
    assert run(refused("TRADE_STATUS_ERROR"), items=1000) is Action.SPLIT
    assert run(refused("TRADE_STATUS_ERROR"), items=1) is Action.FAIL_ITEM


def test_batch_level_refusal_of_one_refund_retries_a_bounded_number_of_times() -> None:
    assert run(refused("DETAIL_DATA_FORMAT_ERROR"), items=1, refund_batches=1) is Action.REBATCH
    assert (
        run(refused("DETAIL_DATA_FORMAT_ERROR"), items=1, refund_batches=MAX_BATCHES_PER_REFUND)
        is Action.FAIL_ITEM
    )


def test_unknown_code_holds_the_batch() -> None:
    assert run(refused("NEVER_SEEN_BEFORE")) is Action.HOLD


def test_day_rule() -> None:
    day = date(2026, 11, 22)
    assert decide_before_send(batch_day=day, today=day, maybe_sent=True) is None
    later = date(2026, 11, 23)
    waiting = decide_before_send(batch_day=day, today=later, maybe_sent=True)
    assert waiting is not None and waiting.action is Action.WAIT_NOTIFY
    fresh = decide_before_send(batch_day=day, today=later, maybe_sent=False)
    assert fresh is not None and fresh.action is Action.REBATCH


@given(
    outcome=st.sampled_from(list(Outcome)),
    code=st.sampled_from(
        [
            "DUPLICATE_BATCH_NO",
            "ILLEGAL_SIGN",
            "TRADE_STATUS_ERROR",
            "ILLEGAL_ARGUMENT",
            "BATCH_REFUND_LOCK_ERROR",
            "WHATEVER",
        ]
    ),
    attempts=st.integers(min_value=1, max_value=50),
    items=st.integers(min_value=1, max_value=1000),
    refund_batches=st.integers(min_value=1, max_value=10),
)
def test_a_batch_that_may_have_been_sent_is_never_released(
    outcome: Outcome, code: str, attempts: int, items: int, refund_batches: int
) -> None:
    attempt = refused(code) if outcome is Outcome.ANSWERED else Attempt(outcome, error="x")
    action = decide(
        attempt,
        maybe_sent_before=True,
        attempts=attempts,
        item_count=items,
        refund_batches=refund_batches,
    ).action
    assert action not in (Action.SPLIT, Action.REBATCH, Action.FAIL_ITEM)


def test_retry_delay_grows_and_is_capped() -> None:
    delays = [retry_delay(n) for n in range(1, 40)]
    assert delays == sorted(delays)
    assert delays[0] > 0
    assert max(delays) == RETRY_CAP_SECONDS
