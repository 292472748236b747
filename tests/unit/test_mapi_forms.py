"""Form bodies in GBK and UTF-8: decoding as Alipay sends them, and the inverse."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.domain.errors import NotifyFormatError, ProtocolError
from worker.mapi import decode_form, encode_form

# Seed 001's example request URL (GBK), query part.
SEED_001_QUERY = (
    b"seller_email=Jier1105%40alitest.com&batch_num=1&refund_date=2011-01-12+11%3A21%3A00"
    b"&notify_url=http%3A%2F%2Fapi.test.alipay.net%2Fatinterface%2Freceive_notify.htm"
    b"&sign=9b3426cac65d36f64bffbfbc6ce50549&service=refund_fastpay_by_platform_pwd"
    b"&partner=2088101008267254"
    b"&detail_data=2014040311001004370000361525%5E5.00%5E%D0%AD%C9%CC%CD%CB%BF%EE"
    b"&sign_type=MD5&batch_no=201101120001"
)


def test_seed_001_gbk_query_decodes() -> None:
    form = decode_form(SEED_001_QUERY, "gbk")
    assert form["detail_data"] == "2014040311001004370000361525^5.00^协商退款"
    assert form["refund_date"] == "2011-01-12 11:21:00"
    assert form["seller_email"] == "Jier1105@alitest.com"
    assert form["notify_url"] == "http://api.test.alipay.net/atinterface/receive_notify.htm"
    assert len(form) == 10


def test_seed_000_lower_case_escapes_decode_in_utf8() -> None:
    body = b"detail_data=2016081821001004270231872174%5e0.01%5e%e5%8d%8f%e5%95%86%e9%80%80%e6%ac%be"
    assert decode_form(body, "UTF-8") == {
        "detail_data": "2016081821001004270231872174^0.01^协商退款"
    }


def test_the_same_bytes_mean_different_text_per_charset() -> None:
    with pytest.raises(NotifyFormatError, match="not valid utf-8"):
        decode_form(b"reason=%D0%AD%C9%CC", "utf-8")
    assert decode_form(b"reason=%D0%AD%C9%CC", "gbk") == {"reason": "协商"}


def test_plus_is_a_space_and_escaped_plus_is_a_plus() -> None:
    assert decode_form(b"a=1+2&b=1%2B2", "utf-8") == {"a": "1 2", "b": "1+2"}


def test_blank_values_kept_and_empty_segments_skipped() -> None:
    assert decode_form(b"a=&b&&c=3&", "utf-8") == {"a": "", "b": "", "c": "3"}
    assert decode_form(b"", "utf-8") == {}


def test_stray_percent_is_kept_literally() -> None:
    assert decode_form(b"a=100%&b=%zz", "utf-8") == {"a": "100%", "b": "%zz"}


@pytest.mark.parametrize(
    ("body", "charset", "problem"),
    [
        (b"a=1&a=2", "utf-8", "repeats"),
        (b"a=1&a=1", "utf-8", "repeats"),
        (b"=1", "utf-8", "empty name"),
        (b"a=%FF", "utf-8", "not valid utf-8"),
        (b"a=\xff", "utf-8", "not valid utf-8"),
        (b"a=%FF", "gbk", "not valid gbk"),
        (b"%FF=1", "utf-8", "parameter name"),
        (b"a=1", "latin-1", "charset"),
    ],
)
def test_decode_errors(body: bytes, charset: str, problem: str) -> None:
    with pytest.raises(NotifyFormatError, match=problem):
        decode_form(body, charset)


keys = st.text(alphabet=st.characters(codec="gbk"), min_size=1, max_size=10)
utf8_values = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]))
gbk_values = st.text(alphabet=st.characters(codec="gbk"))


@given(st.dictionaries(keys, gbk_values, max_size=8), st.sampled_from(["gbk", "GBK", "utf-8"]))
def test_encode_decode_round_trip(params: dict[str, str], charset: str) -> None:
    body = encode_form(params, charset)
    assert body.isascii()
    assert decode_form(body, charset) == params


@given(st.dictionaries(keys, utf8_values, max_size=8))
def test_utf8_round_trip_with_any_text(params: dict[str, str]) -> None:
    assert decode_form(encode_form(params, "utf-8"), "utf-8") == params


def test_encode_uses_plus_for_spaces_and_escapes_reserved_characters() -> None:
    body = encode_form({"refund_date": "2011-01-12 11:21:00", "d": "a^b#c&d=e+f"}, "utf-8")
    assert body == b"refund_date=2011-01-12+11%3A21%3A00&d=a%5Eb%23c%26d%3De%2Bf"
    assert encode_form({"r": "协商退款"}, "gbk") == b"r=%D0%AD%C9%CC%CD%CB%BF%EE"


def test_encode_refuses_what_the_charset_cannot_hold() -> None:
    with pytest.raises(ProtocolError, match="detail_data"):
        encode_form({"detail_data": "😀"}, "gbk")
    with pytest.raises(ProtocolError, match="charset"):
        encode_form({"a": "b"}, "ascii")


@given(st.binary(max_size=200), st.sampled_from(["utf-8", "gbk"]))
def test_random_bytes_raise_nothing_but_notify_format_error(body: bytes, charset: str) -> None:
    try:
        form = decode_form(body, charset)
    except NotifyFormatError:
        return
    assert all(isinstance(k, str) and k and isinstance(v, str) for k, v in form.items())
