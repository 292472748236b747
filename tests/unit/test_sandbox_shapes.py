"""What the notifier accepts as an acknowledgement, and `result_details` in its other shapes."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sandbox.protocol import (
    SKIPPED,
    SUCCESS,
    format_result_details,
    is_acknowledgement,
    success_num,
)
from sandbox.shapes import shaped_result_details, short_amount

T1, T2, T3 = (f"20161122210010042700000000{i:02d}" for i in (1, 2, 3))


@pytest.mark.parametrize(
    "body", [b"success", b"success\r\n", b"success\n", b" success", b"\tsuccess \r\n"]
)
def test_success_with_surrounding_whitespace_acknowledges(body: bytes) -> None:
    assert is_acknowledgement(200, body)


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (200, b"SUCCESS"),
        (200, b"Success\n"),
        (200, b"success!"),
        (200, b"suc cess"),
        (200, b"success\nfail"),
        (200, b"<html>success</html>"),
        (200, b""),
        (500, b"success"),
        (302, b"success"),
        (None, b"success"),
    ],
)
def test_anything_else_is_not_an_acknowledgement(status: int | None, body: bytes) -> None:
    assert not is_acknowledgement(status, body)


@pytest.mark.parametrize(
    ("amount", "short"),
    [("5.00", "5"), ("0.50", "0.5"), ("1.10", "1.1"), ("1.23", "1.23"), ("0.00", "0")],
)
def test_short_amount_drops_trailing_zero_decimals(amount: str, short: str) -> None:
    assert short_amount(amount) == short
    assert Decimal(short) == Decimal(amount)


def read_back(details: str) -> list[tuple[str, Decimal, str]]:
    """The trade parts, split per the official grammar (empty entries are no entries)."""
    out = []
    for entry in details.split("#"):
        if not entry:
            continue
        main = entry.split("$$")[0]
        head = main.split("|")[0]
        trade_part = head.partition("$")[0]
        trade_no, amount, code = trade_part.split("^")
        out.append((trade_no, Decimal(amount), code))
    return out


def parts_are_legal(details: str) -> None:
    """Every non-empty part has the field count the grammar gives it."""
    for entry in filter(None, details.split("#")):
        main, *subs = entry.split("$$")
        head, *royalties = main.split("|")
        trade_part, has_fee, fee = head.partition("$")
        assert len(trade_part.split("^")) == 3
        assert not has_fee or fee == "" or len(fee.split("^")) == 4
        assert all(r == "" or len(r.split("^")) == 6 for r in royalties)
        assert all(s == "" or len(s.split("^")) == 3 for s in subs)


amounts = st.integers(min_value=1, max_value=10**8).map(lambda n: f"{Decimal(n) / 100:.2f}")
rows_strategy = st.lists(
    st.tuples(
        st.integers(min_value=10**15, max_value=10**28 - 1).map(str),
        amounts,
        st.sampled_from([SUCCESS, "TRADE_STATUS_ERROR", "REFUND_CHARGE_ERROR_X"]),
    ),
    min_size=1,
    max_size=20,
)


@settings(max_examples=300)
@given(rows_strategy, st.integers(min_value=0, max_value=2**32 - 1))
def test_every_shape_reads_back_to_the_same_results(
    rows: list[tuple[str, str, str]], seed: int
) -> None:
    details = shaped_result_details(rows, seed)
    assert read_back(details) == [(t, Decimal(a), c) for t, a, c in rows]
    parts_are_legal(details)


def test_the_same_seed_gives_the_same_text() -> None:
    rows = [(T1, "5.00", SUCCESS), (T2, "0.50", "TRADE_STATUS_ERROR")]
    assert shaped_result_details(rows, 7) == shaped_result_details(rows, 7)


def test_every_listed_shape_occurs() -> None:
    rows = [(T1, "5.00", SUCCESS), (T2, "0.50", SUCCESS), (T3, "1.23", "TRADE_STATUS_ERROR")]
    texts = [shaped_result_details(rows, seed) for seed in range(400)]
    entries = [e for text in texts for e in text.split("#") if e]
    wanted: dict[str, Callable[[str], bool]] = {
        "empty fee": lambda e: e.split("|")[0].split("$$")[0].endswith("$"),
        "empty fee, empty royalty": lambda e: "$|" in e and ("$||" in e or e.endswith("$|")),
        "royalty": lambda e: any(r.count("^") == 5 for r in e.split("$$")[0].split("|")[1:]),
        "empty sub-trade": lambda e: e.endswith("$$"),
        "sub-trade": lambda e: "$$" in e and e.split("$$")[1].count("^") == 2,
        "fee": lambda e: e.split("|")[0].split("$$")[0].partition("$")[2].count("^") == 3,
        "short amount": lambda e: e.split("^")[1] in ("5", "0.5"),
        "plain": lambda e: e.count("^") == 2 and not any(c in e for c in "$|"),
    }
    for name, test in wanted.items():
        assert any(test(e) for e in entries), name
    assert any("##" in text for text in texts)
    assert any(text.endswith("#") for text in texts)


def test_skipped_items_are_left_out_of_the_plain_result_details() -> None:
    triples = [
        (T1, Decimal("1.00"), SUCCESS),
        (T2, Decimal("2.00"), SKIPPED),
        (T3, Decimal("3.00"), "TRADE_STATUS_ERROR"),
    ]
    assert format_result_details(triples) == f"{T1}^1.00^SUCCESS#{T3}^3.00^TRADE_STATUS_ERROR"
    assert success_num(triples) == 1
    assert format_result_details([(T1, Decimal("1.00"), SKIPPED)]) == ""
