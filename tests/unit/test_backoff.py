"""The one backoff formula, and the numbers each of its callers had before sharing it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.domain.backoff import backoff_delay
from worker.domain.policy import RETRY_BASE_SECONDS, RETRY_CAP_SECONDS, retry_delay


def test_doubles_from_the_base_up_to_the_cap() -> None:
    delays = [backoff_delay(n, base=0.5, cap=4.0) for n in range(6)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert backoff_delay(0, base=1.0, cap=0.1) == 0.1  # a cap below the base wins


def test_huge_attempt_numbers_stay_at_the_cap() -> None:
    assert backoff_delay(10**9, base=0.2, cap=30.0) == 30.0


@pytest.mark.parametrize(
    ("attempt", "base", "cap"), [(-1, 0.2, 1.0), (0, 0.0, 1.0), (0, 0.2, 0.0), (0, -1.0, 1.0)]
)
def test_refuses_meaningless_arguments(attempt: int, base: float, cap: float) -> None:
    with pytest.raises(ValueError):
        backoff_delay(attempt, base=base, cap=cap)


@given(st.integers(min_value=0, max_value=10_000))
def test_submission_retry_delay_keeps_its_numbers(attempts: int) -> None:
    exponent = max(attempts - 1, 0)
    before = (
        RETRY_CAP_SECONDS
        if exponent >= 16
        else float(min(RETRY_CAP_SECONDS, RETRY_BASE_SECONDS * (2**exponent)))
    )
    assert retry_delay(attempts) == before


@given(st.integers(min_value=1, max_value=10_000), st.floats(min_value=0.01, max_value=200.0))
def test_role_loop_keeps_its_numbers(failures: int, max_backoff: float) -> None:
    before = min(max_backoff, 0.2 * 2 ** min(failures, 10))
    assert backoff_delay(failures, base=0.2, cap=max_backoff) == before


@given(
    st.integers(min_value=0, max_value=10_000),
    st.floats(min_value=0.01, max_value=5.0),
    st.floats(min_value=0.01, max_value=3600.0),
)
def test_consumer_ceiling_keeps_its_numbers(attempt: int, base: float, cap: float) -> None:
    before = min(cap, min(base, cap) * (2 ** min(attempt, 32)))
    assert backoff_delay(attempt, base=min(base, cap), cap=cap) == before
