"""The submission decisions of worker.domain.policy, case by case."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.domain.policy import (
    DATE_REBATCH_DELAY_SECONDS,
    MAX_BATCHES_PER_REFUND,
    RETRY_CAP_SECONDS,
    Action,
    Attempt,
    Decision,
    Outcome,
    decide,
    decide_before_send,
    decide_unsendable,
    retry_delay,
)
from worker.mapi import ERROR_CODES, CodeKind, SyncResponse, SyncStatus

CODES = sorted(ERROR_CODES)

# Codes whose F answer proves the gateway refused the batch and recorded nothing.
PROVEN_REFUSALS = {
    code
    for code, entry in ERROR_CODES.items()
    if entry.kind in (CodeKind.BATCH_FIXABLE, CodeKind.CONFIGURATION, CodeKind.ITEM)
} | {"BATCH_REFUND_LOCK_ERROR"}


def refused(code: str) -> Attempt:
    return Attempt(Outcome.ANSWERED, SyncResponse(SyncStatus.REFUSED, code, ""))


def answered(status: SyncStatus) -> Attempt:
    return Attempt(Outcome.ANSWERED, SyncResponse(status, None, ""))


def decision(
    attempt: Attempt,
    *,
    maybe_sent: bool = False,
    attempts: int = 1,
    items: int = 10,
    refund_batches: int = 1,
) -> Decision:
    return decide(
        attempt,
        maybe_sent_before=maybe_sent,
        attempts=attempts,
        item_count=items,
        refund_batches=refund_batches,
    )


def run(
    attempt: Attempt,
    *,
    maybe_sent: bool = False,
    attempts: int = 1,
    items: int = 10,
    refund_batches: int = 1,
) -> Action:
    return decision(
        attempt,
        maybe_sent=maybe_sent,
        attempts=attempts,
        items=items,
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


def test_system_error_is_retried_under_the_same_batch_no_as_maybe_sent() -> None:
    # SYSTEM_ERROR: "the batch may or may not be recorded". Not a proof of refusal.
    for items in (1, 10):
        got = decision(refused("SYSTEM_ERROR"), items=items)
        assert got.action is Action.RETRY_SAME
        assert got.maybe_sent is True
        assert got.code == "SYSTEM_ERROR"


def test_a_refusal_after_a_system_error_never_releases_the_items() -> None:
    for code in ("ILLEGAL_ARGUMENT", "TRADE_STATUS_ERROR", "REFUND_DATE_ERROR"):
        got = decision(refused(code), maybe_sent=True, attempts=2, items=1, refund_batches=5)
        assert got.action is Action.WAIT_NOTIFY
        assert got.maybe_sent is True


# Every kind of answer, and whether it leaves the batch maybe-sent (on a first attempt).
MAYBE_SENT_TABLE: list[tuple[str, Attempt, bool]] = [
    ("connection never opened", Attempt(Outcome.NOT_SENT, error="connect_failed"), False),
    ("read timeout", Attempt(Outcome.UNKNOWN, error="read_timeout"), True),
    ("reset", Attempt(Outcome.UNKNOWN, error="connection_lost"), True),
    ("http 502", Attempt(Outcome.UNKNOWN, error="http_502"), True),
    ("unparseable", Attempt(Outcome.ANSWERED, SyncResponse(SyncStatus.UNKNOWN, None, "x")), True),
    ("T", answered(SyncStatus.ACCEPTED), True),
    ("P", answered(SyncStatus.PROCESSING), True),
    ("F without a code", answered(SyncStatus.REFUSED), True),
    ("F SYSTEM_ERROR", refused("SYSTEM_ERROR"), True),
    ("F system_error, any case", refused(" system_error "), True),
    ("F unknown code", refused("NEVER_SEEN_BEFORE"), True),
    ("F DUPLICATE_BATCH_NO", refused("DUPLICATE_BATCH_NO"), True),
    ("F BATCH_REFUND_LOCK_ERROR", refused("BATCH_REFUND_LOCK_ERROR"), False),
    ("F batch fixable", refused("ILLEGAL_ARGUMENT"), False),
    ("F configuration", refused("ILLEGAL_SIGN"), False),
    ("F item", refused("TRADE_STATUS_ERROR"), False),
]


@pytest.mark.parametrize(
    ("case", "attempt", "maybe_sent"), MAYBE_SENT_TABLE, ids=[c for c, _, _ in MAYBE_SENT_TABLE]
)
def test_only_a_proven_refusal_leaves_the_batch_not_maybe_sent(
    case: str, attempt: Attempt, maybe_sent: bool
) -> None:
    for items in (1, 10):
        got = decision(attempt, items=items)
        assert got.maybe_sent is maybe_sent, case


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


@pytest.mark.parametrize(
    "code", ["REFUND_DATE_ERROR", "BATCH_NO_FORMAT_ERROR", "refund_date_error"]
)
@pytest.mark.parametrize("items", [1, 2, 1000])
@pytest.mark.parametrize("refund_batches", [0, 1, MAX_BATCHES_PER_REFUND, 50])
def test_a_date_refusal_renumbers_the_whole_batch_later_and_never_fails_a_refund(
    code: str, items: int, refund_batches: int
) -> None:
    # Clock skew against the gateway near Beijing midnight: nothing wrong with the refunds.
    got = decision(refused(code), items=items, refund_batches=refund_batches)
    assert got.action is Action.REDATE
    assert got.maybe_sent is False
    assert got.counts_toward_refund_limit is False
    assert DATE_REBATCH_DELAY_SECONDS > 0


def test_a_date_refusal_after_an_unknown_outcome_still_waits() -> None:
    got = decision(refused("REFUND_DATE_ERROR"), maybe_sent=True, attempts=2)
    assert got.action is Action.WAIT_NOTIFY and got.maybe_sent


def test_other_refusals_count_toward_the_refund_limit() -> None:
    assert decision(refused("DETAIL_DATA_FORMAT_ERROR"), items=1).counts_toward_refund_limit


def test_a_batch_refused_for_its_date_is_renumbered_when_it_comes_due() -> None:
    day = date(2026, 11, 22)
    for today in (day, date(2026, 11, 23)):
        again = decide_before_send(
            batch_day=day, today=today, maybe_sent=False, last_code="REFUND_DATE_ERROR"
        )
        assert again is not None and again.action is Action.REBATCH
        assert not again.maybe_sent
    # Other codes on the same day: send again under the same batch_no.
    assert (
        decide_before_send(
            batch_day=day, today=day, maybe_sent=False, last_code="BATCH_REFUND_LOCK_ERROR"
        )
        is None
    )
    # Never renumbered once it may have been sent.
    waiting = decide_before_send(
        batch_day=day, today=day, maybe_sent=True, last_code="REFUND_DATE_ERROR"
    )
    assert waiting is None


def test_unknown_code_holds_the_batch() -> None:
    assert run(refused("NEVER_SEEN_BEFORE")) is Action.HOLD


def test_day_rule() -> None:
    day = date(2026, 11, 22)
    assert decide_before_send(batch_day=day, today=day, maybe_sent=True) is None
    later = date(2026, 11, 23)
    waiting = decide_before_send(batch_day=day, today=later, maybe_sent=True)
    assert waiting is not None and waiting.action is Action.WAIT_NOTIFY
    assert waiting.maybe_sent is True
    fresh = decide_before_send(batch_day=day, today=later, maybe_sent=False)
    assert fresh is not None and fresh.action is Action.REBATCH
    assert fresh.maybe_sent is False


def test_a_request_that_cannot_be_built_is_held_and_keeps_what_was_known() -> None:
    for before in (False, True):
        got = decide_unsendable("unencodable reason", maybe_sent_before=before)
        assert got.action is Action.HOLD
        assert got.maybe_sent is before
        assert got.operator_flag == "request_invalid"


@pytest.mark.parametrize("action", [Action.SPLIT, Action.FAIL_ITEM, Action.REBATCH])
def test_a_decision_that_releases_items_cannot_be_maybe_sent(action: Action) -> None:
    with pytest.raises(ValueError, match="maybe"):
        Decision(action=action, reason="x", maybe_sent=True)


@pytest.mark.parametrize("action", [Action.ACCEPTED, Action.WAIT_NOTIFY, Action.VERIFY_DUPLICATE])
def test_a_decision_that_waits_for_the_gateway_is_maybe_sent(action: Action) -> None:
    with pytest.raises(ValueError, match="maybe"):
        Decision(action=action, reason="x", maybe_sent=False)


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
    got = decide(
        attempt,
        maybe_sent_before=True,
        attempts=attempts,
        item_count=items,
        refund_batches=refund_batches,
    )
    assert got.action not in (Action.SPLIT, Action.REBATCH, Action.FAIL_ITEM)
    assert got.maybe_sent is True


@given(
    outcome=st.sampled_from(list(Outcome)),
    status=st.sampled_from(list(SyncStatus)),
    code=st.one_of(st.none(), st.sampled_from(CODES), st.text(max_size=12)),
    maybe_sent_before=st.booleans(),
    attempts=st.integers(min_value=1, max_value=50),
    items=st.integers(min_value=1, max_value=1000),
    refund_batches=st.integers(min_value=0, max_value=10),
)
def test_items_are_released_only_after_a_proven_refusal(
    outcome: Outcome,
    status: SyncStatus,
    code: str | None,
    maybe_sent_before: bool,
    attempts: int,
    items: int,
    refund_batches: int,
) -> None:
    response = SyncResponse(status, code, "") if outcome is Outcome.ANSWERED else None
    attempt = Attempt(outcome, response, error="x")
    got = decide(
        attempt,
        maybe_sent_before=maybe_sent_before,
        attempts=attempts,
        item_count=items,
        refund_batches=refund_batches,
    )
    proven = outcome is Outcome.NOT_SENT or (
        status is SyncStatus.REFUSED
        and code is not None
        and code.strip().upper() in PROVEN_REFUSALS
    )
    if not got.maybe_sent:
        assert proven and not maybe_sent_before
    if got.action in (Action.SPLIT, Action.REBATCH, Action.FAIL_ITEM):
        assert not got.maybe_sent


def test_retry_delay_grows_and_is_capped() -> None:
    delays = [retry_delay(n) for n in range(1, 40)]
    assert delays == sorted(delays)
    assert delays[0] > 0
    assert max(delays) == RETRY_CAP_SECONDS
