"""detail_data: reason sanitizing, encoding, decoding and the batch item rules."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.domain.errors import DetailDataError
from worker.mapi import (
    MAX_REASON_BYTES,
    RefundItem,
    decode_detail_data,
    encode_detail_data,
    sanitize_reason,
)

TRADE = "2016081821001004270231872174"

trade_nos = st.text(alphabet="0123456789", min_size=16, max_size=64)
amounts = st.integers(min_value=1, max_value=10_000_000_000).map(lambda n: Decimal(n) / 100)
any_text = st.text(max_size=400)


def valid_reasons(codec: str) -> st.SearchStrategy[str]:
    return st.text(
        alphabet=st.characters(codec=codec, exclude_categories=["Cs"]), max_size=200
    ).map(lambda text: sanitize_reason(text, codec))


def item_lists(codec: str) -> st.SearchStrategy[list[RefundItem]]:
    return st.lists(
        st.builds(RefundItem, trade_nos, amounts, valid_reasons(codec)),
        min_size=1,
        max_size=30,
        unique_by=lambda item: item.trade_no,
    )


# --- sanitize_reason ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("char", "replacement"), [("^", "＾"), ("|", "｜"), ("$", "＄"), ("#", "＃")]
)
@pytest.mark.parametrize("charset", ["utf-8", "gbk"])
def test_each_separator_becomes_its_full_width_twin(
    char: str, replacement: str, charset: str
) -> None:
    assert sanitize_reason(f"a{char}b", charset) == f"a{replacement}b"
    replacement.encode(charset)  # the replacement itself is encodable


@pytest.mark.parametrize("char", ["\n", "\r", "\t", "\x00", "\x7f", "\u200b", "\u202e", "\u2028"])
def test_control_and_format_characters_become_spaces(char: str) -> None:
    assert sanitize_reason(f"退款{char}原因", "utf-8") == "退款 原因"


def test_gbk_unencodable_characters_are_replaced_only_in_gbk() -> None:
    assert sanitize_reason("退款😀ok", "gbk") == "退款?ok"
    assert sanitize_reason("退款😀ok", "GBK") == "退款?ok"
    assert sanitize_reason("退款😀ok", "utf-8") == "退款😀ok"
    assert sanitize_reason("a\ud800b", "utf-8") == "a?b"  # lone surrogate


@pytest.mark.parametrize(("charset", "width"), [("utf-8", 3), ("gbk", 2)])
def test_truncation_stops_on_a_character_boundary_at_256_bytes(charset: str, width: int) -> None:
    # 255 ASCII bytes, then a wide character that would cross the limit.
    text = "a" * 255 + "退" * 3
    result = sanitize_reason(text, charset)
    assert result == "a" * 255
    # Exactly 256 bytes is kept whole.
    exact = "a" * (256 - width) + "退"
    assert sanitize_reason(exact, charset) == exact
    assert len(sanitize_reason(exact, charset).encode(charset)) == 256
    # All wide characters: as many as fit whole.
    wide = sanitize_reason("退" * 200, charset)
    assert wide == "退" * (256 // width)
    wide.encode(charset).decode(charset)


@given(st.text(max_size=600), st.sampled_from(["utf-8", "gbk"]))
def test_sanitized_reasons_are_always_valid(text: str, charset: str) -> None:
    reason = sanitize_reason(text, charset)
    assert len(reason.encode(charset)) <= MAX_REASON_BYTES
    assert not set(reason) & set("^|$#\n\r")
    assert reason == sanitize_reason(reason, charset)  # idempotent
    encode_detail_data([RefundItem(TRADE, Decimal("1.00"), reason)], charset=charset)


def test_sanitize_rejects_unknown_charsets() -> None:
    with pytest.raises(DetailDataError, match="charset"):
        sanitize_reason("x", "latin-1")


# --- encode / decode -----------------------------------------------------------------


def test_encode_matches_the_seed_example() -> None:
    items = [RefundItem("2014040311001004370000361525", Decimal("5"), "协商退款")]
    assert encode_detail_data(items) == "2014040311001004370000361525^5.00^协商退款"


def test_encode_joins_items_with_hash_and_writes_two_decimals() -> None:
    items = [
        RefundItem("2016081821001004270231872174", Decimal("0.01"), "协商退款"),
        RefundItem("2016082721001004640239968415", Decimal("160"), ""),
    ]
    text = encode_detail_data(items, charset="gbk")
    assert text == (
        "2016081821001004270231872174^0.01^协商退款#2016082721001004640239968415^160.00^"
    )
    assert decode_detail_data(text, charset="gbk") == items


@given(st.sampled_from(["utf-8", "gbk"]).flatmap(lambda c: st.tuples(st.just(c), item_lists(c))))
def test_encode_decode_round_trip(case: tuple[str, list[RefundItem]]) -> None:
    charset, items = case
    text = encode_detail_data(items, charset=charset)
    decoded = decode_detail_data(text, charset=charset)
    assert decoded == items
    assert all(str(item.amount) == f"{item.amount:.2f}" for item in decoded)
    assert text.count("#") == len(items) - 1


def test_a_full_batch_of_1000_is_fine_and_1001_is_not() -> None:
    items = [RefundItem(f"{n:016d}", Decimal("1.00")) for n in range(1, 1002)]
    assert len(decode_detail_data(encode_detail_data(items[:1000]))) == 1000
    with pytest.raises(DetailDataError, match="at most 1000"):
        encode_detail_data(items)
    with pytest.raises(DetailDataError, match="at most 1000"):
        decode_detail_data("#".join(f"{n:016d}^1.00^" for n in range(1, 1002)))


@pytest.mark.parametrize(
    ("items", "problem"),
    [
        ([], "at least one"),
        ([RefundItem(TRADE, Decimal("1")), RefundItem(TRADE, Decimal("2"))], "twice"),
        ([RefundItem(TRADE, Decimal("0"))], "greater than zero"),
        ([RefundItem(TRADE, Decimal("-1.00"))], "greater than zero"),
        ([RefundItem(TRADE, Decimal("1.001"))], "more than two decimals"),
        ([RefundItem(TRADE, Decimal("100000000.01"))], "above the maximum"),
        ([RefundItem(TRADE, Decimal("NaN"))], "finite"),
        ([RefundItem(TRADE, Decimal("1"), "a^b")], "separator"),
        ([RefundItem(TRADE, Decimal("1"), "a|b")], "separator"),
        ([RefundItem(TRADE, Decimal("1"), "a$b")], "separator"),
        ([RefundItem(TRADE, Decimal("1"), "a#b")], "separator"),
        ([RefundItem(TRADE, Decimal("1"), "a\nb")], "control"),
        ([RefundItem(TRADE, Decimal("1"), "a" * 257)], "257 bytes"),
        ([RefundItem(TRADE, Decimal("1"), "退" * 86)], "258 bytes"),
        ([RefundItem("123456789012345", Decimal("1"))], "16-64 digits"),
        ([RefundItem("1" * 65, Decimal("1"))], "16-64 digits"),
        ([RefundItem("201608182100100A", Decimal("1"))], "16-64 digits"),
        ([RefundItem("２０１６０８１８２１００１００４", Decimal("1"))], "16-64 digits"),
    ],
)
def test_encode_refuses_broken_rules_with_a_clear_message(
    items: list[RefundItem], problem: str
) -> None:
    with pytest.raises(DetailDataError, match=problem):
        encode_detail_data(items)


def test_reason_length_is_counted_in_the_request_charset() -> None:
    reason = "退" * 100  # 300 bytes in UTF-8, 200 in GBK
    encode_detail_data([RefundItem(TRADE, Decimal("1"), reason)], charset="gbk")
    with pytest.raises(DetailDataError, match="300 bytes"):
        encode_detail_data([RefundItem(TRADE, Decimal("1"), reason)], charset="utf-8")
    with pytest.raises(DetailDataError, match="cannot encode"):
        encode_detail_data([RefundItem(TRADE, Decimal("1"), "😀")], charset="gbk")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "empty"),
        (f"{TRADE}^1.00", "got 2 field"),
        (f"{TRADE}^1.00^a^b", "got 4 field"),
        (f"{TRADE}^1.00^ok#", "got 1 field"),
        (f"{TRADE}^1.00^a|2088101568345155^x^1.00^r", "plain"),
        (f"{TRADE}^1.00^a$$x", "plain"),
        (f"{TRADE}^0.00^r", "greater than zero"),
        (f"{TRADE}^1.005^r", "at most two decimals"),
        (f"{TRADE}^1.00^r#{TRADE}^2.00^r", "twice"),
        ("12345^1.00^r", "16-64 digits"),
    ],
)
def test_decode_refuses_broken_rules(text: str, problem: str) -> None:
    with pytest.raises(DetailDataError, match=problem):
        decode_detail_data(text)


@given(st.one_of(any_text, st.text(alphabet="0123456789^#$|.-ab 退", max_size=200)))
def test_decode_raises_nothing_but_detail_data_error(text: str) -> None:
    try:
        items = decode_detail_data(text)
    except DetailDataError:
        return
    # Whatever decodes is a valid batch: it encodes again and reads back the same.
    assert decode_detail_data(encode_detail_data(items)) == items
