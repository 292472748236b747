"""refund_fastpay_query: the signed request, and answers read in every shape Alipay sends."""

from __future__ import annotations

import hashlib
from decimal import Decimal

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import given
from hypothesis import strategies as st

from worker.domain.errors import ConfigError, ProtocolError, SigningError
from worker.mapi import encode_form, signing_string, verify
from worker.mapi.query import (
    MAX_ANSWER_BYTES,
    QUERY_SERVICE,
    QueryStatus,
    RefundQueryAnswer,
    build_refund_query,
    parse_refund_query,
)
from worker.mapi.request import Merchant

MD5_KEY = "q3ryk3yq3ryk3yq3ryk3yq3ryk3y0000"  # made up for these tests
_PRIVATE = rsa.generate_private_key(public_exponent=65537, key_size=1024)
PRIVATE_PEM = _PRIVATE.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
).decode()
PUBLIC_PEM = _PRIVATE.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
)
MERCHANT = Merchant(partner="2088301487863565", charset="utf-8", sign_type="MD5", md5_key=MD5_KEY)
BATCH_NO = "20121204001"
TRADE_NO = "2012111620984834"

# Answers as public integrations quote them (comments of PHP and Java clients).
PHP_SAMPLE = (
    b"is_success=T&result_details=20121204001^2012111620984834^0.01^TRADE_HAS_CLOSED"
    b"#20121122001^2012111620984834^0.01^SUCCESS"
)
NOT_EXIST = b"is_success=F&error_code=REFUND_NOT_EXIST"
JAVA_SAMPLES = {
    "201606160000375820^20160415210010255^210.00^SUCCESS^true^P": ("SUCCESS", ("true", "P")),
    "201510160000000001^20151016210010640^2.40^SUCCESS^false^null": ("SUCCESS", ("false", "null")),
    "201612030000706479^2016111821001004690283673855^1879.00^SELLER_BALANCE_NOT_ENOUGH"
    "^false^null": ("SELLER_BALANCE_NOT_ENOUGH", ("false", "null")),
}


def rows(answer: RefundQueryAnswer) -> list[tuple[str | None, str, Decimal | None, str]]:
    return [(i.batch_no, i.trade_no, i.amount, i.code) for i in answer.items]


# --- the request -------------------------------------------------------------------


def test_query_by_batch_is_signed_md5_over_the_sorted_parameters() -> None:
    params = build_refund_query(MERCHANT, batch_no=BATCH_NO)
    assert params == {
        "service": QUERY_SERVICE,
        "partner": MERCHANT.partner,
        "_input_charset": "utf-8",
        "batch_no": BATCH_NO,
        "sign": params["sign"],
        "sign_type": "MD5",
    }
    by_hand = (
        "_input_charset=utf-8&batch_no=20121204001&partner=2088301487863565"
        "&service=refund_fastpay_query"
    )
    assert signing_string(params) == by_hand
    assert params["sign"] == hashlib.md5((by_hand + MD5_KEY).encode()).hexdigest()
    assert verify(params, charset="utf-8", md5_key=MD5_KEY)


def test_query_by_trade_and_by_both() -> None:
    by_trade = build_refund_query(MERCHANT, trade_no=TRADE_NO)
    assert by_trade["trade_no"] == TRADE_NO and "batch_no" not in by_trade
    both = build_refund_query(MERCHANT, batch_no=BATCH_NO, trade_no=TRADE_NO)
    assert (both["batch_no"], both["trade_no"]) == (BATCH_NO, TRADE_NO)
    assert verify(both, charset="utf-8", md5_key=MD5_KEY)
    assert not verify(dict(both, trade_no="2012111620984835"), charset="utf-8", md5_key=MD5_KEY)


def test_rsa_and_gbk_merchants() -> None:
    merchant = Merchant(
        partner=MERCHANT.partner, charset="gbk", sign_type="RSA", private_key_pem=PRIVATE_PEM
    )
    params = build_refund_query(merchant, batch_no=BATCH_NO)
    assert (params["_input_charset"], params["sign_type"]) == ("gbk", "RSA")
    assert verify(params, charset="gbk", public_key_pem=PUBLIC_PEM)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({}, ProtocolError, "batch_no, a trade_no or both"),
        ({"batch_no": "2012120400"}, ProtocolError, "batch_no"),
        ({"batch_no": "20121304001"}, ProtocolError, "batch_no"),
        ({"trade_no": "12345"}, ProtocolError, "trade_no"),
        ({"batch_no": BATCH_NO, "trade_no": "2012111620984834x"}, ProtocolError, "trade_no"),
    ],
)
def test_bad_numbers_are_refused_before_signing(
    kwargs: dict[str, str], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        build_refund_query(MERCHANT, **kwargs)


def test_bad_merchants_are_refused() -> None:
    with pytest.raises(ConfigError, match="partner"):
        build_refund_query(Merchant(partner="12345", md5_key=MD5_KEY), batch_no=BATCH_NO)
    with pytest.raises(SigningError, match="MD5 key"):
        build_refund_query(Merchant(partner=MERCHANT.partner), batch_no=BATCH_NO)


# --- answers: what they establish --------------------------------------------------


def test_public_sample_lists_every_batch_of_the_trade() -> None:
    answer = parse_refund_query(PHP_SAMPLE)
    assert answer.status is QueryStatus.FOUND and answer.error is None
    assert rows(answer) == [
        ("20121204001", TRADE_NO, Decimal("0.01"), "TRADE_HAS_CLOSED"),
        ("20121122001", TRADE_NO, Decimal("0.01"), "SUCCESS"),
    ]
    assert [i.code for i in answer.for_batch("20121122001")] == ["SUCCESS"]
    assert answer.for_batch("20121122002") == ()
    assert [i.succeeded for i in answer.items] == [False, True]


@pytest.mark.parametrize("entry", sorted(JAVA_SAMPLES))
def test_bank_card_return_fields_follow_the_code(entry: str) -> None:
    answer = parse_refund_query(b"is_success=T&result_details=" + entry.encode())
    (item,) = answer.items
    code, extra = JAVA_SAMPLES[entry]
    assert answer.status is QueryStatus.FOUND
    assert (item.code, item.extra, item.raw) == (code, extra, entry)


def test_refund_not_exist_is_not_found() -> None:
    answer = parse_refund_query(NOT_EXIST)
    assert answer == RefundQueryAnswer(
        QueryStatus.NOT_FOUND,
        "the gateway has no such refund (REFUND_NOT_EXIST)",
        error="REFUND_NOT_EXIST",
    )
    assert answer.items == () and answer.for_batch(BATCH_NO) == ()


@pytest.mark.parametrize("code", ["ILLEGAL_SIGN", "ILLEGAL_PARTNER", "HAS_NO_PRIVILEGE"])
def test_other_error_codes_refuse_the_query(code: str) -> None:
    answer = parse_refund_query(f"is_success=F&error_code={code}".encode())
    assert (answer.status, answer.error) == (QueryStatus.REFUSED, code)
    assert code in answer.detail


def test_codes_in_lower_case_and_under_the_xml_name() -> None:
    assert parse_refund_query(b"is_success=F&error_code=refund_not_exist").status is (
        QueryStatus.NOT_FOUND
    )
    assert parse_refund_query(b"is_success=F&error=ILLEGAL_SIGN").error == "ILLEGAL_SIGN"
    same = parse_refund_query(b"is_success=F&error=ILLEGAL_SIGN&error_code=ILLEGAL_SIGN")
    assert same.status is QueryStatus.REFUSED


@pytest.mark.parametrize("charset", ["utf-8", "gbk", "GBK"])
def test_form_encoded_answers_as_the_sandbox_writes_them(charset: str) -> None:
    details = (
        "20121204001^2012111620984834^0.01^SUCCESS^Y^S"
        "#20121204001^2012111620984835^5^TRADE_HAS_CLOSED^N^"
    )
    body = encode_form({"is_success": "T", "result_details": details}, charset)
    assert b"%5E" in body and b"%23" in body
    answer = parse_refund_query(body, charset=charset)
    assert answer.status is QueryStatus.FOUND
    assert rows(answer) == [
        (BATCH_NO, TRADE_NO, Decimal("0.01"), "SUCCESS"),
        (BATCH_NO, "2012111620984835", Decimal("5.00"), "TRADE_HAS_CLOSED"),
    ]
    assert answer.items[1].extra == ("N", "")


def test_percent_escaped_gbk_text_is_decoded_in_the_query_charset() -> None:
    details = f"{BATCH_NO}^{TRADE_NO}^0.01^SUCCESS$收款方@example.com^2088101964737404^0.00^SUCCESS"
    body = encode_form({"is_success": "T", "result_details": details}, "gbk")
    (item,) = parse_refund_query(body, charset="gbk").items
    assert item.fee == "收款方@example.com^2088101964737404^0.00^SUCCESS"
    # Raw GBK bytes are read too, whatever charset the query was sent with.
    raw = b"is_success=T&result_details=" + details.encode("gbk")
    assert parse_refund_query(raw, charset="utf-8").items[0].fee == item.fee


def test_a_plus_is_kept_and_whitespace_around_fields_is_ignored() -> None:
    body = (
        b"\xef\xbb\xbf \r\nis_success=T &\r\n result_details="
        b"20121204001^2012111620984834^0.01^SUCCESS$a+b@x.com^2088101964737404^0.00^SUCCESS"
        b"&&sign_type=MD5&sign=abc+/=\r\n"
    )
    answer = parse_refund_query(body)
    assert answer.status is QueryStatus.FOUND
    assert answer.items[0].fee is not None and answer.items[0].fee.startswith("a+b@x.com^")
    assert (answer.fields["sign_type"], answer.fields["sign"]) == ("MD5", "abc+/=")


def test_the_xml_shape_is_read_like_the_submission_answer() -> None:
    body = (
        '<?xml version="1.0" encoding="GBK"?>\n<alipay><is_success>T</is_success>'
        "<result_details>20121204001^2012111620984834^0.01^SUCCESS</result_details>"
        "<sign_type>MD5</sign_type></alipay>"
    ).encode("gbk")
    answer = parse_refund_query(b"  " + body)
    assert rows(answer) == [(BATCH_NO, TRADE_NO, Decimal("0.01"), "SUCCESS")]
    xml_error = b"<alipay><is_success>F</is_success><error>REFUND_NOT_EXIST</error></alipay>"
    assert parse_refund_query(xml_error).status is QueryStatus.NOT_FOUND


def test_the_signature_stays_out_of_the_repr() -> None:
    answer = parse_refund_query(
        PHP_SAMPLE + b"&sign_type=MD5&sign=0123456789abcdef0123456789abcdef"
    )
    assert answer.fields["sign"] == "0123456789abcdef0123456789abcdef"
    assert "0123456789abcdef" not in repr(answer) and "0123456789abcdef" not in answer.detail


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b"", "empty"),
        (b" \r\n", "empty"),
        (b"<html><body><h1>502 Bad Gateway</h1></body></html>", "root element is <html>"),
        (b"<html><body><br></body></html>", "not well-formed"),
        (
            b'<!DOCTYPE alipay [<!ENTITY x "T">]><alipay><is_success>&x;</is_success></alipay>',
            "DOCTYPE",
        ),
        (b"<alipay><is_success>T</is_success><is_success>F</is_success></alipay>", "repeats"),
        (b"success", "neither XML nor key=value"),
        (b"is_success=T&is_success=F", "repeats is_success"),
        (b"result_details=20121204001^2012111620984834^0.01^SUCCESS", "no is_success"),
        (b"is_success=P", "not T or F"),
        (b"is_success=", "not T or F"),
        (b"is_success=F", "without an error code"),
        (b"is_success=F&error_code=", "without an error code"),
        (b"is_success=F&error_code=NOT A CODE", "malformed"),
        (b"is_success=F&error=ILLEGAL_SIGN&error_code=REFUND_NOT_EXIST", "two different"),
        (b"is_success=T", "without result_details"),
        (b"is_success=T&result_details=", "without result_details"),
        (b"is_success=T&result_details=#", "holds no entry"),
        (b"is_success=T&error_code=REFUND_NOT_EXIST", "together with an error"),
        (b"is_success=T&result_details=\xff\xfe\xff", "neither utf-8 nor gbk"),
        (b"x" * (MAX_ANSWER_BYTES + 1), "larger than"),
    ],
)
def test_anything_else_is_unknown(body: bytes, detail: str) -> None:
    answer = parse_refund_query(body)
    assert answer.status is QueryStatus.UNKNOWN
    assert detail in answer.detail
    assert answer.error is None


def test_an_unreadable_entry_makes_the_answer_unknown_but_keeps_what_was_read() -> None:
    # A trade missing from what could be read is not missing from the gateway: such an
    # answer must never count as showing that a batch does not hold some trade.
    body = PHP_SAMPLE + b"#20121204001^^0.01^SUCCESS#20121204001^2012111620984835^0.01"
    answer = parse_refund_query(body)
    assert answer.status is QueryStatus.UNKNOWN
    assert [i.code for i in answer.items] == ["TRADE_HAS_CLOSED", "SUCCESS"]
    assert len(answer.unread) == 2
    assert "2 entries of result_details could not be read" in answer.detail


def test_non_bytes_and_unknown_charsets_are_unknown() -> None:
    assert parse_refund_query("is_success=T").status is QueryStatus.UNKNOWN  # type: ignore[arg-type]
    assert parse_refund_query(NOT_EXIST, charset="latin-1").detail.startswith("unsupported")
    assert parse_refund_query(bytearray(NOT_EXIST)).status is QueryStatus.NOT_FOUND


# --- properties ----------------------------------------------------------------------

batch_nos = st.from_regex(
    r"20[0-9]{2}(0[1-9]|1[0-2])(0[1-9]|1[0-9]|2[0-8])[0-9A-Za-z]{3,24}", fullmatch=True
)
trade_nos = st.from_regex(r"[0-9]{16,64}", fullmatch=True)
amounts = st.decimals(min_value=0, max_value=100_000_000, places=2)
codes = st.sampled_from(["SUCCESS", "TRADE_HAS_CLOSED", "SELLER_BALANCE_NOT_ENOUGH", "X_1"])
extras = st.sampled_from(["", "^true^S", "^false^null", "^N^", "^Y^S"])
entries = st.tuples(batch_nos, trade_nos, amounts, codes, extras)


@given(st.lists(entries, min_size=1, max_size=20), st.sampled_from(["utf-8", "gbk"]), st.booleans())
def test_every_entry_comes_back_in_order(
    listed: list[tuple[str, str, Decimal, str, str]], charset: str, form_encoded: bool
) -> None:
    details = "#".join(f"{b}^{t}^{a}^{c}{x}" for b, t, a, c, x in listed)
    fields = {"is_success": "T", "result_details": details, "sign_type": "MD5", "sign": "s"}
    if form_encoded:
        body = encode_form(fields, charset)
    else:
        body = "&".join(f"{k}={v}" for k, v in fields.items()).encode(charset)
    answer = parse_refund_query(body, charset=charset)
    assert answer.status is QueryStatus.FOUND
    assert rows(answer) == [(b, t, a, c) for b, t, a, c, _ in listed]
    assert answer.fields["result_details"] == details


junk = st.sampled_from(["", "^", "^^", "x", "0.01", "SUCCESS", "$", "|", "$$", " "])


@given(
    st.lists(
        st.one_of(
            entries.map(lambda e: "^".join(map(str, e[:4])) + e[4]),
            st.lists(junk, max_size=6).map("".join),
        ),
        min_size=1,
        max_size=12,
    )
)
def test_found_means_every_entry_was_read(texts: list[str]) -> None:
    answer = parse_refund_query(("is_success=T&result_details=" + "#".join(texts)).encode())
    if answer.status is QueryStatus.FOUND:
        written = [t for t in texts if t.strip()]
        assert len(answer.items) == len(written) and not answer.unread
    else:
        assert answer.status is QueryStatus.UNKNOWN


@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_raise(body: bytes) -> None:
    answer = parse_refund_query(body)
    assert isinstance(answer.status, QueryStatus)
    if answer.status is QueryStatus.FOUND:
        assert answer.items and not answer.unread
    if answer.status is QueryStatus.NOT_FOUND:
        assert answer.error == "REFUND_NOT_EXIST" and not answer.items


@given(
    st.dictionaries(
        st.sampled_from(["is_success", "result_details", "error_code", "error", "sign"]),
        st.one_of(
            st.sampled_from(["T", "F", "REFUND_NOT_EXIST", "ILLEGAL_SIGN"]), st.text(max_size=30)
        ),
    )
)
def test_arbitrary_fields_never_raise(fields: dict[str, str]) -> None:
    try:
        body = encode_form(fields, "utf-8")
    except ProtocolError:
        return
    answer = parse_refund_query(body)
    assert isinstance(answer, RefundQueryAnswer)
    if answer.status in (QueryStatus.NOT_FOUND, QueryStatus.REFUSED):
        assert fields["is_success"].strip() == "F" and answer.error
