"""The fast paths of `forms` and `detail` against their reference implementations.

The form codec and `decode_detail_data` do their work with C-level string
operations instead of a Python loop per byte or per item. These tests run the
fast code and the straightforward reference (urllib, the item-by-item loop)
side by side on random input, including the awkward cases (stray `%`,
backslashes, `+`, many distinct bytes, control characters, wide reasons) and
require the same result or the same error.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any
from urllib.parse import quote_plus, unquote_to_bytes

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from worker.domain.errors import DetailDataError, NotifyFormatError, ProtocolError
from worker.mapi import RefundItem, decode_form, encode_detail_data, encode_form
from worker.mapi.charsets import codec_for
from worker.mapi.detail import (
    _decode_checked,
    _decode_fast,
    _has_blanked,
    decode_detail_data,
    decode_detail_rows,
)
from worker.mapi.forms import quote_form_value, unquote_form_value

# --- references: the straightforward versions --------------------------------------


def reference_decode_form(body: bytes, charset: str) -> dict[str, str]:
    """`decode_form` as first written: urllib's unquote per key and value."""
    codec = codec_for(charset)
    if codec is None:
        raise NotifyFormatError(f"unsupported form charset {str(charset)[:20]!r}")
    result: dict[str, str] = {}
    for segment in bytes(body).split(b"&"):
        if not segment:
            continue
        raw_key, _, raw_value = segment.partition(b"=")
        key = _reference_part(raw_key, codec, "a parameter name")
        if not key:
            raise NotifyFormatError("form has a parameter with an empty name")
        if key in result:
            raise NotifyFormatError(f"form repeats the parameter {key[:40]!r}")
        result[key] = _reference_part(raw_value, codec, f"the value of {key[:40]!r}")
    return result


def _reference_part(raw: bytes, codec: str, what: str) -> str:
    try:
        return unquote_to_bytes(raw.replace(b"+", b" ")).decode(codec)
    except UnicodeDecodeError:
        raise NotifyFormatError(f"{what} is not valid {codec}") from None


def reference_encode_form(params: Mapping[str, str], charset: str) -> bytes:
    """`encode_form` as first written: urllib's quote_plus per key and value."""
    codec = codec_for(charset)
    if codec is None:
        raise ProtocolError(f"unsupported form charset {str(charset)[:20]!r}")
    pairs: list[str] = []
    for key, value in params.items():
        try:
            pairs.append(
                f"{quote_plus(key, safe='', encoding=codec, errors='strict')}"
                f"={quote_plus(value, safe='', encoding=codec, errors='strict')}"
            )
        except UnicodeEncodeError:
            raise ProtocolError(f"parameter {key[:40]!r} cannot be encoded in {codec}") from None
    return "&".join(pairs).encode("ascii")


def outcome(call: Callable[[], Any]) -> tuple[str, Any]:
    """The value, or the exception type and message: what two versions must agree on."""
    try:
        return "ok", call()
    except Exception as exc:  # compared, never swallowed: a difference fails the test
        return type(exc).__name__, str(exc)


# --- strategies ------------------------------------------------------------------

# Pieces that exercise every branch of percent-decoding.
form_pieces = st.sampled_from(
    [b"%", b"%%", b"+", b"&", b"=", b"\\", b"\\x", b"\\x41", b"%2", b"%4", b"%41", b"%2B",
     b"%5c", b"%5C", b"%e5%8d%8f", b"%D0%AD", b"%FF", b"%zz", b"%g1", b"%0", b"%00", b"a",
     b"detail_data", b"\xe5\x8d\x8f", b"\xd0\xad", b"\n", b"\\u0041", b"\\N{DIGIT ONE}"]
)  # fmt: skip
form_bodies = st.one_of(
    st.binary(max_size=120),
    st.lists(st.one_of(form_pieces, st.binary(max_size=3)), max_size=40).map(b"".join),
)
charsets = st.sampled_from(["utf-8", "gbk", "GBK", "UTF-8"])
# Text with a few or very many distinct characters, spaces, `%`, `+` and backslashes.
form_texts = st.one_of(
    st.text(max_size=80),
    st.text(alphabet="ab ~-_.%+\\^#&=协商退款😀\x00\n", max_size=80),
    st.text(alphabet=st.characters(codec="gbk"), min_size=30, max_size=120),
)


# --- forms ---------------------------------------------------------------------------


@settings(max_examples=600)
@given(form_bodies)
@example(b"a=100%&b=%zz&c=%%41&d=\\%41&e=%5C%5c\\\\")
def test_unquote_equals_urllib(raw: bytes) -> None:
    assert unquote_form_value(raw) == unquote_to_bytes(raw.replace(b"+", b" "))


@settings(max_examples=600)
@given(form_bodies, charsets)
def test_decode_form_equals_the_reference(body: bytes, charset: str) -> None:
    assert outcome(lambda: decode_form(body, charset)) == outcome(
        lambda: reference_decode_form(body, charset)
    )


@settings(max_examples=600)
@given(form_texts, st.sampled_from(["utf-8", "gbk"]))
@example("".join(chr(c) for c in range(32, 127)), "utf-8")
@example("".join(chr(c) for c in range(0x4E00, 0x4E40)), "gbk")
def test_quote_equals_urllib(text: str, codec: str) -> None:
    assert outcome(lambda: quote_form_value(text, codec)) == outcome(
        lambda: quote_plus(text, safe="", encoding=codec, errors="strict").encode("ascii")
    )


@settings(max_examples=300)
@given(st.dictionaries(form_texts, form_texts, max_size=6), charsets)
def test_encode_form_equals_the_reference(params: dict[str, str], charset: str) -> None:
    assert outcome(lambda: encode_form(params, charset)) == outcome(
        lambda: reference_encode_form(params, charset)
    )


def test_non_text_values_fail_as_urllib_fails() -> None:
    with pytest.raises(TypeError):
        quote_form_value(b"bytes", "utf-8")  # type: ignore[arg-type]


# --- detail_data ---------------------------------------------------------------------

trade_nos = st.text(alphabet="0123456789", min_size=16, max_size=64)
amount_texts = st.one_of(
    st.integers(min_value=1, max_value=10_000_000_000).map(lambda n: f"{Decimal(n) / 100:.2f}"),
    st.sampled_from(["0.00", "0", "1", "1.5", "1.005", "100000000.00", "100000000.01", "01.00",
                     "1e3", "-1.00", " 1.00", "１.00", "9" * 40, "1.", ".5"]),
)  # fmt: skip
reasons = st.one_of(
    st.text(max_size=20),
    st.text(alphabet="协商退款 ab\u3000\u00a0\u200b\n\t|$^#😀\udc80", max_size=20),
    st.sampled_from(["退" * 85, "退" * 86, "退" * 128, "退" * 129, "a" * 256, "a" * 257]),
)
any_trade_nos = st.one_of(
    trade_nos,
    st.text(alphabet="0123456789", min_size=65, max_size=80),
    st.text(alphabet="0123456789x ２", max_size=70),
)
items = st.tuples(any_trade_nos, amount_texts, reasons).map(lambda t: "^".join(t))
detail_texts = st.one_of(
    st.lists(items, min_size=1, max_size=12).map("#".join),
    st.text(alphabet="0123456789^#$|.-ab 退\n", max_size=200),
)


@settings(max_examples=800)
@given(detail_texts, st.sampled_from(["utf-8", "gbk"]))
@example("2016081821001004270231872174^1.00^a\udc80b", "utf-8")  # a lone surrogate
@example("2016081821001004270231872174^1.00^a\U0001f600b", "gbk")  # no GBK for emoji
@example("2016081821001004270231872174^1.00^a\u3000b", "utf-8")  # not printable, allowed
def test_decode_detail_data_equals_the_reference(text: str, codec: str) -> None:
    fast = outcome(lambda: decode_detail_data(text, charset=codec))
    rows = outcome(lambda: decode_detail_rows(text, charset=codec))
    reference = outcome(lambda: _decode_checked(text, codec))
    if reference[0] == "ok":
        expected_rows = [(i.trade_no, i.amount, i.reason) for i in reference[1]]
        assert fast == reference
        assert rows == ("ok", expected_rows)
        assert _decode_fast(text, codec, text.count("#") + 1) == expected_rows
    else:
        # The reference names the problem; both functions must refuse too.
        assert fast[0] == rows[0] == "DetailDataError"
        assert _decode_fast(text, codec, text.count("#") + 1) is None


def _valid_items(codec: str) -> st.SearchStrategy[list[RefundItem]]:
    reason = st.text(alphabet=st.characters(codec=codec, exclude_categories=["Cs"]), max_size=90)
    return st.lists(
        st.builds(
            RefundItem,
            trade_nos,
            st.integers(min_value=1, max_value=10_000_000_000).map(lambda n: Decimal(n) / 100),
            reason.map(lambda r: "".join(ch for ch in r if ch not in "^|$#" and ch.isprintable())),
        ),
        min_size=1,
        max_size=20,
        unique_by=lambda item: item.trade_no,
    ).filter(lambda xs: all(len(x.reason.encode(codec)) <= 256 for x in xs))


@settings(max_examples=300)
@given(st.sampled_from(["utf-8", "gbk"]).flatmap(lambda c: st.tuples(st.just(c), _valid_items(c))))
def test_valid_batches_take_the_fast_path(case: tuple[str, list[RefundItem]]) -> None:
    codec, expected = case
    text = encode_detail_data(expected, charset=codec)
    fast = _decode_fast(text, codec, len(expected))
    assert fast is not None
    assert [RefundItem(*row) for row in fast] == expected == _decode_checked(text, codec)
    assert [type(amount) for _, amount, _ in fast] == [Decimal] * len(fast)


def test_a_full_batch_takes_the_fast_path_in_both_charsets() -> None:
    batch = [RefundItem(f"{2016081821001004270000000000 + n}", Decimal("0.01"), "协商退款 x")
             for n in range(1000)]  # fmt: skip
    for codec in ("utf-8", "gbk"):
        text = encode_detail_data(batch, charset=codec)
        assert _decode_fast(text, codec, 1000) == [(i.trade_no, i.amount, i.reason) for i in batch]


def test_errors_still_name_the_first_broken_item() -> None:
    good = "#".join(f"{2016081821001004270000000000 + n}^1.00^ok" for n in range(5))
    with pytest.raises(DetailDataError, match=r"item 6 .*twice"):
        decode_detail_data(good + "#2016081821001004270000000000^1.00^again")
    with pytest.raises(DetailDataError, match=r"item 6 .*control"):
        decode_detail_data(good + "#2016081821001004270000000099^1.00^a\u200bb")


@settings(max_examples=500)
@given(st.text(max_size=40))
@example("a\u3000b\u00a0c")  # spaces that are not printable yet allowed
@example("a\u2028b")
def test_blanked_check_equals_the_category_scan(text: str) -> None:
    expected = any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in text)
    assert _has_blanked(text) is expected
