"""Amounts: strict parsing of refund amounts, two-decimal formatting, reported amounts."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.domain.errors import DetailDataError
from worker.mapi import MAX_AMOUNT, format_amount, parse_amount
from worker.mapi.amounts import parse_reported_amount

cents = st.integers(min_value=1, max_value=10_000_000_000).map(lambda n: Decimal(n) / 100)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("5", "5.00"),
        ("5.0", "5.00"),
        ("5.00", "5.00"),
        ("0.01", "0.01"),
        ("100000000.00", "100000000.00"),
        ("160.00", "160.00"),
    ],
)
def test_parse_amount_accepts_plain_decimals(text: str, expected: str) -> None:
    value = parse_amount(text)
    assert value == Decimal(expected)
    assert str(value) == expected


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "empty"),
        ("0", "greater than zero"),
        ("0.00", "greater than zero"),
        ("-1.00", "at most two decimals"),
        ("+1.00", "at most two decimals"),
        ("1.001", "at most two decimals"),
        ("1e3", "at most two decimals"),
        ("1,000.00", "at most two decimals"),
        (" 1.00", "at most two decimals"),
        ("1.", "at most two decimals"),
        (".5", "at most two decimals"),
        ("NaN", "at most two decimals"),
        ("\u0661.00", "at most two decimals"),  # Arabic-Indic digit one
        ("100000000.01", "above the maximum"),
        ("1" * 40, "at most two decimals"),
    ],
)
def test_parse_amount_rejects_with_a_reason(text: str, problem: str) -> None:
    with pytest.raises(DetailDataError, match=problem):
        parse_amount(text)


@given(cents)
def test_format_then_parse_round_trips(value: Decimal) -> None:
    text = format_amount(value)
    assert text.count(".") == 1 and len(text.split(".")[1]) == 2
    assert parse_amount(text) == value


def test_format_amount_always_writes_two_decimals() -> None:
    assert format_amount(Decimal("5")) == "5.00"
    assert format_amount(Decimal("5.1")) == "5.10"
    assert format_amount(Decimal("0")) == "0.00"
    assert format_amount(MAX_AMOUNT) == "100000000.00"
    assert format_amount(Decimal("1E+2")) == "100.00"


@pytest.mark.parametrize("value", [Decimal("1.005"), Decimal("NaN"), Decimal("Infinity")])
def test_format_amount_never_rounds_or_formats_non_numbers(value: Decimal) -> None:
    with pytest.raises(DetailDataError):
        format_amount(value)


def test_format_amount_refuses_floats() -> None:
    with pytest.raises(DetailDataError, match="Decimal"):
        format_amount(1.5)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("80", Decimal("80.00")),
        ("0", Decimal("0.00")),
        ("1272.0", Decimal("1272.00")),
        ("0.010", Decimal("0.01")),
    ],
)
def test_reported_amounts_are_lenient_about_decimals(text: str, expected: Decimal) -> None:
    assert parse_reported_amount(text) == expected


@pytest.mark.parametrize("text", ["", "-1", "0.001", "1e2", "abc", "1.2.3"])
def test_reported_amounts_reject_garbage(text: str) -> None:
    assert parse_reported_amount(text) is None
