"""The release rule of a batch the gateway may have taken, and the query schedule."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.domain.policy import (
    QUERY_REPEAT_SECONDS,
    RELEASE_AFTER_SECONDS,
    QueryAnswer,
    ReleaseDecision,
    decide_release,
    next_query_delay,
)
from worker.mapi import BEIJING

DAY = date(2026, 11, 22)
# The last attempt: 23:00 Beijing on the batch's day.
LAST_ATTEMPT = datetime(2026, 11, 22, 23, 0, tzinfo=BEIJING)
NOT_FOUND = QueryAnswer.NOT_FOUND.value
FOUND = QueryAnswer.FOUND.value
REFUSED = QueryAnswer.REFUSED.value
NO_ANSWER = QueryAnswer.NO_ANSWER.value


def after(hours: float) -> datetime:
    return LAST_ATTEMPT + timedelta(hours=hours)


def decide(
    answers: list[tuple[datetime, str]],
    *,
    now: datetime | None = None,
    batch_day: date = DAY,
    release_after: float = RELEASE_AFTER_SECONDS,
) -> ReleaseDecision:
    return decide_release(
        batch_day=batch_day,
        last_attempt_at=LAST_ATTEMPT,
        answers=answers,
        now=now or after(30),
        release_after_seconds=release_after,
    )


# Queries on the reconciler's schedule, all REFUND_NOT_EXIST, the last 25 h after.
RELEASING = [(after(h), NOT_FOUND) for h in (1, 1.2, 2.2, 8.2, 25)]


def test_two_not_exist_answers_a_day_after_the_last_attempt_release() -> None:
    decision = decide(RELEASING)
    assert decision.release, decision.reason
    assert decide([(after(1), NOT_FOUND), (after(24), NOT_FOUND)]).release


def test_a_found_answer_means_never() -> None:
    decision = decide([(after(0.5), FOUND), *RELEASING])
    assert not decision.release
    assert "found" in decision.reason


def test_one_not_exist_answer_is_not_enough() -> None:
    assert not decide([(after(25), NOT_FOUND)]).release


@pytest.mark.parametrize("other", [REFUSED, NO_ANSWER, "partial", ""])
def test_an_answer_other_than_not_exist_last_keeps_it_waiting(other: str) -> None:
    assert not decide([*RELEASING, (after(26), other)]).release


@pytest.mark.parametrize("other", [REFUSED, NO_ANSWER])
def test_an_error_between_two_not_exist_answers_restarts_the_count(other: str) -> None:
    answers = [(after(1), NOT_FOUND), (after(2), other), (after(25), NOT_FOUND)]
    assert not decide(answers).release
    assert decide([*answers, (after(26), NOT_FOUND)]).release


@pytest.mark.parametrize("other", [REFUSED, NO_ANSWER, "partial"])
def test_an_error_asked_at_the_same_moment_as_the_last_not_exists_keeps_it_waiting(
    other: str,
) -> None:
    """Answers with one timestamp have no order: the one against a release counts last."""
    for answers in (
        [(after(25), other), (after(25), NOT_FOUND), (after(25), NOT_FOUND)],
        [(after(25), NOT_FOUND), (after(25), other), (after(25), NOT_FOUND)],
        [(after(25), NOT_FOUND), (after(25), NOT_FOUND), (after(25), other)],
    ):
        assert not decide(answers).release


def test_the_last_not_exist_must_come_release_after_seconds_after_the_last_attempt() -> None:
    answers = [(after(1), NOT_FOUND), (after(23.9), NOT_FOUND)]
    assert not decide(answers).release
    assert decide(answers, release_after=23 * 3600).release


def test_answers_before_the_last_attempt_do_not_count() -> None:
    before = [(after(-2), NOT_FOUND), (after(-1), NOT_FOUND)]
    assert not decide([*before, (after(25), NOT_FOUND)]).release


def test_never_on_the_batch_s_own_day() -> None:
    on_the_day = datetime(2026, 11, 22, 23, 59, tzinfo=BEIJING)
    answers = [(after(0.1), NOT_FOUND), (after(0.5), NOT_FOUND)]
    decision = decide(answers, now=on_the_day, release_after=0)
    assert not decision.release
    assert "day" in decision.reason


def test_the_deciding_answer_must_be_asked_after_the_batch_s_day() -> None:
    # Both answers on the batch's own day: the number could still have been taken then.
    answers = [(after(0.1), NOT_FOUND), (after(0.5), NOT_FOUND)]
    assert not decide(answers, release_after=0).release
    assert decide([*answers, (after(1.5), NOT_FOUND)], release_after=0).release


def test_answers_in_the_future_do_not_count() -> None:
    assert not decide(RELEASING, now=after(24.5)).release


def test_input_order_does_not_matter() -> None:
    answers = [(after(25), NOT_FOUND), (after(26), NO_ANSWER), (after(1), NOT_FOUND)]
    assert not decide(answers).release
    assert decide(list(reversed(RELEASING))).release


def test_naive_times_and_a_wrong_today_are_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        decide([(datetime(2026, 11, 24, 1, 0), NOT_FOUND)])
    with pytest.raises(ValueError, match="today"):
        decide_release(
            batch_day=DAY,
            last_attempt_at=LAST_ATTEMPT,
            answers=RELEASING,
            now=after(30),
            today=DAY,
        )
    assert decide_release(
        batch_day=DAY,
        last_attempt_at=LAST_ATTEMPT,
        answers=RELEASING,
        now=after(30),
        today=after(30).astimezone(BEIJING).date(),
    ).release


kinds = st.sampled_from([FOUND, NOT_FOUND, NOT_FOUND, NOT_FOUND, REFUSED, NO_ANSWER])
offsets = st.floats(min_value=-48, max_value=24 * 10, allow_nan=False)
histories = st.lists(st.tuples(offsets, kinds), max_size=12)


def at_offsets(history: list[tuple[float, str]]) -> list[tuple[datetime, str]]:
    return [(after(h), kind) for h, kind in history]


@given(history=histories, found_at=offsets, now_h=st.floats(min_value=0, max_value=24 * 12))
def test_no_history_with_a_found_answer_ever_releases(
    history: list[tuple[float, str]], found_at: float, now_h: float
) -> None:
    answers = at_offsets([*history, (found_at, FOUND)])
    assert not decide(answers, now=after(now_h), release_after=0).release


@given(
    history=histories,
    now_minutes=st.integers(min_value=0, max_value=59),
    release_after=st.floats(min_value=0, max_value=2 * 86400),
)
def test_never_released_on_the_batch_s_own_day(
    history: list[tuple[float, str]], now_minutes: int, release_after: float
) -> None:
    now = LAST_ATTEMPT + timedelta(minutes=now_minutes)  # 23:00 to 23:59 Beijing
    assert not decide(at_offsets(history), now=now, release_after=release_after).release


@given(
    history=histories,
    now_h=st.floats(min_value=0, max_value=24 * 12),
    release_after=st.floats(min_value=0, max_value=2 * 86400),
)
def test_a_release_always_rests_on_two_late_not_exist_answers(
    history: list[tuple[float, str]], now_h: float, release_after: float
) -> None:
    now = after(now_h)
    answers = at_offsets(history)
    if not decide(answers, now=now, release_after=release_after).release:
        return
    counted = sorted((at, k) for at, k in answers if LAST_ATTEMPT < at <= now)
    assert [k for _, k in counted[-2:]] == [NOT_FOUND, NOT_FOUND]
    last_at = counted[-1][0]
    assert last_at - LAST_ATTEMPT >= timedelta(seconds=release_after)
    assert last_at.astimezone(BEIJING).date() > DAY
    assert all(k != FOUND for _, k in answers)


def test_query_schedule_grows_then_repeats_daily() -> None:
    assert [next_query_delay(n) for n in range(1, 8)] == [
        600.0,
        3600.0,
        21600.0,
        86400.0,
        QUERY_REPEAT_SECONDS,
        86400.0,
        86400.0,
    ]
    with pytest.raises(ValueError):
        next_query_delay(0)


@given(st.integers(min_value=1, max_value=10_000))
def test_query_delays_never_shrink(n: int) -> None:
    assert 0 < next_query_delay(n) <= next_query_delay(n + 1)
