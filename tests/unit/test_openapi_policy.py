"""The OpenAPI decision table of worker.domain.policy.openapi, row by row."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.domain.policy import (
    Channel,
    OpenApiAction,
    SendOutcome,
    decide_coupon_notification,
    decide_openapi,
)
from worker.domain.policy.openapi import (
    MAX_UNSETTLED_ATTEMPTS,
    NOTIFY_WAIT_SECONDS,
    RETRY_BASE_SECONDS,
    RETRY_CAP_SECONDS,
)
from worker.openapi import Classification, CouponNotification, Settlement, Verdict

A = OpenApiAction
TRADE, COUPON = Channel.TRADE_REFUND, Channel.COUPON_REFUND
ANSWERED = SendOutcome.ANSWERED
IDS = Settlement(trade_no="2014112611001004680073956707", settled_at="2024-05-01 09:30:01")


def c(
    verdict: Verdict, code: str | None = None, settlement: Settlement | None = None
) -> Classification:
    return Classification(verdict, f"{verdict.value} {code or ''}", code, settlement)


SUCCEEDED = c(Verdict.SUCCEEDED, settlement=IDS)
REFUSED = c(Verdict.REFUSED, "ACQ.TRADE_HAS_FINISHED")
CLOSED = c(Verdict.REFUSED, "CLOSED")
CONFIG = c(Verdict.CONFIG_ERROR, "isv.invalid-signature")
NEEDS_QUERY = c(Verdict.NEEDS_QUERY)
DISCORDANT = c(Verdict.NEEDS_QUERY, "ACQ.DISCORDANT_REPEAT_REQUEST")
IN_PROGRESS = c(Verdict.IN_PROGRESS)
NOT_FOUND = c(Verdict.NOT_FOUND)
UNKNOWN = c(Verdict.UNKNOWN, "isp.unknow-error")
CHANNELS = [TRADE, COUPON]
QUERY_ANSWERS = [SUCCEEDED, REFUSED, CLOSED, CONFIG, NEEDS_QUERY, IN_PROGRESS, NOT_FOUND, UNKNOWN]


@pytest.mark.parametrize("channel", CHANNELS)
@pytest.mark.parametrize("query", [None, *QUERY_ANSWERS])
@pytest.mark.parametrize("before", [False, True])
def test_row_1_a_success_answer_completes_whatever_a_query_says(
    channel: Channel, query: Classification | None, before: bool
) -> None:
    decision = decide_openapi(channel, ANSWERED, SUCCEEDED, query, maybe_sent_before=before)
    assert (decision.action, decision.row) == (A.COMPLETE_SUCCEEDED, 1)
    assert decision.settlement == IDS and decision.delay_seconds is None


@pytest.mark.parametrize("channel", CHANNELS)
@pytest.mark.parametrize("query", [None, SUCCEEDED, NOT_FOUND])
def test_row_2_a_configuration_error_halts_the_channel(
    channel: Channel, query: Classification | None
) -> None:
    decision = decide_openapi(channel, ANSWERED, CONFIG, query)
    assert (decision.action, decision.row, decision.code) == (
        A.HALT_CHANNEL,
        2,
        "isv.invalid-signature",
    )


@pytest.mark.parametrize("channel", CHANNELS)
def test_row_3_a_first_refusal_fails_the_refund_with_its_code(channel: Channel) -> None:
    decision = decide_openapi(channel, ANSWERED, REFUSED)
    assert (decision.action, decision.row, decision.code) == (
        A.COMPLETE_FAILED,
        3,
        "ACQ.TRADE_HAS_FINISHED",
    )


def test_row_4_a_closed_coupon_operation_fails_even_after_an_unknown_attempt() -> None:
    decision = decide_openapi(COUPON, ANSWERED, CLOSED, maybe_sent_before=True)
    assert (decision.action, decision.row, decision.code) == (A.COMPLETE_FAILED, 4, "CLOSED")


@pytest.mark.parametrize("channel", CHANNELS)
@pytest.mark.parametrize("answer", [NEEDS_QUERY, IN_PROGRESS, UNKNOWN, None])
def test_row_5_a_query_success_completes_with_its_ids(
    channel: Channel, answer: Classification | None
) -> None:
    outcome = ANSWERED if answer is not None else SendOutcome.UNKNOWN
    decision = decide_openapi(channel, outcome, answer, SUCCEEDED)
    assert (decision.action, decision.row, decision.settlement) == (A.COMPLETE_SUCCEEDED, 5, IDS)


def test_row_6_a_query_configuration_error_halts() -> None:
    decision = decide_openapi(TRADE, ANSWERED, NEEDS_QUERY, CONFIG)
    assert (decision.action, decision.row) == (A.HALT_CHANNEL, 6)


def test_row_7_a_query_saying_closed_fails() -> None:
    decision = decide_openapi(COUPON, ANSWERED, IN_PROGRESS, CLOSED)
    assert (decision.action, decision.row, decision.code) == (A.COMPLETE_FAILED, 7, "CLOSED")


def test_row_8_a_refusal_after_an_unknown_attempt_fails_once_the_query_finds_nothing() -> None:
    decision = decide_openapi(TRADE, ANSWERED, REFUSED, NOT_FOUND, maybe_sent_before=True)
    assert (decision.action, decision.row, decision.code) == (
        A.COMPLETE_FAILED,
        8,
        "ACQ.TRADE_HAS_FINISHED",
    )


def test_row_9_a_discordant_repeat_not_refunded_is_held() -> None:
    decision = decide_openapi(TRADE, ANSWERED, DISCORDANT, NOT_FOUND)
    assert (decision.action, decision.row) == (A.HOLD, 9)
    assert decision.code == "ACQ.DISCORDANT_REPEAT_REQUEST"


@pytest.mark.parametrize("answer", [NEEDS_QUERY, UNKNOWN, None])
def test_row_10_not_refunded_sends_the_same_request_again(answer: Classification | None) -> None:
    outcome = ANSWERED if answer is not None else SendOutcome.UNKNOWN
    decision = decide_openapi(TRADE, outcome, answer, NOT_FOUND, attempts=3)
    assert (decision.action, decision.row) == (A.RETRY_SAME, 10)
    assert decision.delay_seconds == RETRY_BASE_SECONDS * 4


def test_row_11_a_coupon_query_in_progress_waits_for_the_notification() -> None:
    decision = decide_openapi(COUPON, ANSWERED, IN_PROGRESS, IN_PROGRESS)
    assert (decision.action, decision.row) == (A.WAIT_NOTIFY, 11)
    assert decision.delay_seconds == NOTIFY_WAIT_SECONDS


@pytest.mark.parametrize(
    ("channel", "query"),
    [(TRADE, UNKNOWN), (COUPON, UNKNOWN), (TRADE, NEEDS_QUERY), (TRADE, IN_PROGRESS)],
)
def test_row_12_a_query_that_settles_nothing_is_asked_again(
    channel: Channel, query: Classification
) -> None:
    decision = decide_openapi(channel, ANSWERED, NEEDS_QUERY, query)
    assert (decision.action, decision.row) == (A.QUERY_FIRST, 12)
    assert decision.delay_seconds == RETRY_BASE_SECONDS


@pytest.mark.parametrize("channel", CHANNELS)
def test_row_13_a_refusal_after_an_unknown_attempt_is_confirmed_first(channel: Channel) -> None:
    decision = decide_openapi(channel, ANSWERED, REFUSED, maybe_sent_before=True)
    assert (decision.action, decision.row) == (A.QUERY_FIRST, 13)


@pytest.mark.parametrize("channel", CHANNELS)
@pytest.mark.parametrize("answer", [NEEDS_QUERY, DISCORDANT])
def test_row_14_fund_change_n_and_alike_query_first(
    channel: Channel, answer: Classification
) -> None:
    decision = decide_openapi(channel, ANSWERED, answer)
    assert (decision.action, decision.row) == (A.QUERY_FIRST, 14)


def test_row_15_a_coupon_refund_in_progress_waits_for_the_notification() -> None:
    decision = decide_openapi(COUPON, ANSWERED, IN_PROGRESS)
    assert (decision.action, decision.row) == (A.WAIT_NOTIFY, 15)
    assert decision.delay_seconds == NOTIFY_WAIT_SECONDS


def test_row_16_a_trade_refund_in_progress_is_queried() -> None:
    decision = decide_openapi(TRADE, ANSWERED, IN_PROGRESS)
    assert (decision.action, decision.row) == (A.QUERY_FIRST, 16)


@pytest.mark.parametrize("channel", CHANNELS)
@pytest.mark.parametrize(
    ("outcome", "answer"),
    [
        (SendOutcome.NOT_SENT, None),
        (SendOutcome.UNKNOWN, None),
        (ANSWERED, UNKNOWN),
        (ANSWERED, NOT_FOUND),
    ],
)
def test_row_17_an_unknown_outcome_sends_the_same_request_again(
    channel: Channel, outcome: SendOutcome, answer: Classification | None
) -> None:
    decision = decide_openapi(channel, outcome, answer)
    assert (decision.action, decision.row) == (A.RETRY_SAME, 17)
    assert decision.delay_seconds == RETRY_BASE_SECONDS


def test_the_backoff_is_capped() -> None:
    decision = decide_openapi(TRADE, SendOutcome.UNKNOWN, None, attempts=20)
    assert decision.delay_seconds == RETRY_CAP_SECONDS


@pytest.mark.parametrize(
    ("answer", "query"),
    [(None, None), (NEEDS_QUERY, None), (NEEDS_QUERY, UNKNOWN), (IN_PROGRESS, None)],
)
def test_an_unsettled_refund_goes_to_an_operator_after_the_limit(
    answer: Classification | None, query: Classification | None
) -> None:
    outcome = ANSWERED if answer is not None else SendOutcome.UNKNOWN
    decision = decide_openapi(COUPON, outcome, answer, query, attempts=MAX_UNSETTLED_ATTEMPTS)
    assert decision.action is A.HOLD and decision.delay_seconds is None
    below = decide_openapi(COUPON, outcome, answer, query, attempts=MAX_UNSETTLED_ATTEMPTS - 1)
    assert below.action is not A.HOLD


def test_a_final_answer_is_final_past_the_limit() -> None:
    decision = decide_openapi(TRADE, ANSWERED, SUCCEEDED, attempts=MAX_UNSETTLED_ATTEMPTS + 5)
    assert decision.action is A.COMPLETE_SUCCEEDED


def test_inconsistent_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="ANSWERED"):
        decide_openapi(TRADE, ANSWERED, None)
    with pytest.raises(ValueError, match="ANSWERED"):
        decide_openapi(TRADE, SendOutcome.UNKNOWN, UNKNOWN)
    with pytest.raises(ValueError, match="attempts"):
        decide_openapi(TRADE, SendOutcome.UNKNOWN, None, attempts=0)


_VERDICTS = st.sampled_from(list(Verdict))
_CODES = st.sampled_from(
    [None, "CLOSED", "ACQ.TRADE_HAS_FINISHED", "ACQ.DISCORDANT_REPEAT_REQUEST"]
)


@given(
    st.sampled_from(CHANNELS),
    st.sampled_from(list(SendOutcome)),
    _VERDICTS,
    _CODES,
    st.none() | _VERDICTS,
    st.booleans(),
    st.integers(min_value=1, max_value=100),
)
def test_only_a_proof_completes_a_refund(
    channel: Channel,
    outcome: SendOutcome,
    verdict: Verdict,
    code: str | None,
    query_verdict: Verdict | None,
    before: bool,
    attempts: int,
) -> None:
    answer = Classification(verdict, "", code) if outcome is ANSWERED else None
    query = Classification(query_verdict, "") if query_verdict is not None else None
    decision = decide_openapi(
        channel, outcome, answer, query, maybe_sent_before=before, attempts=attempts
    )
    if decision.action is A.COMPLETE_SUCCEEDED:
        assert Verdict.SUCCEEDED in (verdict if answer else None, query_verdict)
    if decision.action is A.COMPLETE_FAILED:
        refused = answer is not None and verdict is Verdict.REFUSED
        assert refused or query_verdict is Verdict.REFUSED
        if refused and before and code != "CLOSED":
            assert query_verdict in (Verdict.NOT_FOUND, Verdict.REFUSED)
    if decision.action is A.HALT_CHANNEL:
        assert Verdict.CONFIG_ERROR in (verdict if answer else None, query_verdict)


def test_a_success_notification_completes_the_coupon_refund() -> None:
    notification = CouponNotification(
        notify_id="n1",
        notify_time="2024-05-01 09:30:00",
        auth_no="2018081710002001860231318890",
        out_request_no="R1",
        operation_id="20180817000000123",
        amount=Decimal("0.01"),
        status="SUCCESS",
        gmt_trans="2024-05-01 09:29:59",
    )
    decision = decide_coupon_notification(notification)
    assert decision.action is A.COMPLETE_SUCCEEDED
    assert decision.settlement == Settlement(
        operation_id="20180817000000123",
        amount=Decimal("0.01"),
        settled_at="2024-05-01 09:29:59",
    )
    other = CouponNotification(**{**notification.__dict__, "status": "INIT"})
    assert decide_coupon_notification(other).action is A.QUERY_FIRST
