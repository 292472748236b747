"""The signed member of an OpenAPI answer, taken as raw text, and its verification."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.openapi import alipay_keys, by_hand_signature, signed_answer
from worker.openapi import (
    COUPON_REFUND,
    TRADE_REFUND,
    TRADE_REFUND_QUERY,
    Answer,
    AnswerShapeError,
    CouponOperationResult,
    MemberKind,
    TradeRefundQueryResult,
    TradeRefundResult,
    Unverifiable,
    body_text,
    extract_signed,
    member_name,
    read_answer,
)

ALIPAY_PRIVATE, ALIPAY_PUBLIC = alipay_keys()

# A trade refund answer as Alipay writes it: spaces, a `\/` escape, braces and an
# escaped quote inside strings, a nested list of objects.
MEMBER = (
    '{ "code" : "10000", "msg": "Success", "buyer_logon_id": "159****5620",\n'
    '  "fund_change": "Y", "gmt_refund_pay": "2014-11-27 15:45:57",\n'
    '  "out_trade_no": "6823789339978248", "refund_fee": "88.88",\n'
    '  "memo": "a } b { \\"c\\" http:\\/\\/x",\n'
    '  "refund_detail_item_list": [{"fund_channel": "ALIPAYACCOUNT", "amount": "10.00"}],\n'
    '  "trade_no": "2014112611001004680073956707" }'
)


def answer_body(member: str = MEMBER, **kwargs: Any) -> str:
    return signed_answer(TRADE_REFUND, member, ALIPAY_PRIVATE, **kwargs)


def test_member_name_replaces_dots() -> None:
    assert member_name("alipay.fund.coupon.order.refund") == (
        "alipay_fund_coupon_order_refund_response"
    )


@pytest.mark.parametrize("sign_first", [False, True])
def test_extraction_returns_the_member_exactly_as_received(sign_first: bool) -> None:
    part = extract_signed(answer_body(sign_first=sign_first), TRADE_REFUND)
    assert part.content == MEMBER
    assert part.name == "alipay_trade_refund_response" and part.kind is MemberKind.RESPONSE
    assert part.sign == by_hand_signature(MEMBER, ALIPAY_PRIVATE)


def test_extraction_survives_whitespace_around_every_token() -> None:
    sign = by_hand_signature(MEMBER, ALIPAY_PRIVATE)
    raw = f' \r\n{{\n\t"sign" :\t"{sign}" ,\n "alipay_trade_refund_response"  :  {MEMBER}\n}}\n'
    assert extract_signed(raw, TRADE_REFUND).content == MEMBER


def test_a_verified_trade_refund_answer_is_typed() -> None:
    answer = read_answer(answer_body(), TRADE_REFUND, ALIPAY_PUBLIC)
    assert isinstance(answer, Answer)
    assert (answer.code, answer.msg, answer.sub_code) == ("10000", "Success", None)
    assert answer.body == TradeRefundResult(
        trade_no="2014112611001004680073956707",
        out_trade_no="6823789339978248",
        fund_change="Y",
        refund_fee=Decimal("88.88"),
        gmt_refund_pay="2014-11-27 15:45:57",
    )
    assert answer.fields["memo"] == 'a } b { "c" http://x'
    assert "refund_detail_item_list" not in answer.fields


def test_a_tampered_byte_fails_verification() -> None:
    raw = answer_body().replace('"88.88"', '"88.89"')
    result = read_answer(raw, TRADE_REFUND, ALIPAY_PUBLIC)
    assert isinstance(result, Unverifiable) and "does not verify" in result.reason
    assert result.code == "10000"


def test_re_encoded_json_does_not_verify() -> None:
    sign = by_hand_signature(json.dumps(json.loads(MEMBER)), ALIPAY_PRIVATE)
    raw = f'{{"alipay_trade_refund_response":{MEMBER},"sign":"{sign}"}}'
    assert isinstance(read_answer(raw, TRADE_REFUND, ALIPAY_PUBLIC), Unverifiable)


def test_a_sha1_signature_is_refused() -> None:
    raw = answer_body(algorithm="sha1")
    assert isinstance(read_answer(raw, TRADE_REFUND, ALIPAY_PUBLIC), Unverifiable)


def test_another_key_is_refused() -> None:
    from tests.support.openapi import app_keys

    assert isinstance(read_answer(answer_body(), TRADE_REFUND, app_keys()[1]), Unverifiable)


def test_an_error_response_may_replace_the_member() -> None:
    member = '{"code":"40002","msg":"Invalid Arguments","sub_code":"isv.invalid-app-id"}'
    raw = signed_answer(TRADE_REFUND, member, ALIPAY_PRIVATE, name="error_response")
    part = extract_signed(raw, TRADE_REFUND)
    assert part.kind is MemberKind.ERROR and part.content == member
    answer = read_answer(raw, TRADE_REFUND, ALIPAY_PUBLIC)
    assert isinstance(answer, Answer) and answer.member is MemberKind.ERROR
    assert answer.sub_code == "isv.invalid-app-id" and answer.body is None


@pytest.mark.parametrize("sign", ['"sign":""', None])
def test_an_unsigned_error_response_is_unverifiable(sign: str | None) -> None:
    member = '{"code":"40002","msg":"Invalid Arguments","sub_code":"isv.invalid-app-id"}'
    raw = f'{{"error_response":{member}' + (f",{sign}}}" if sign else "}")
    result = read_answer(raw, TRADE_REFUND, ALIPAY_PUBLIC)
    assert isinstance(result, Unverifiable)
    assert result.member is MemberKind.ERROR
    assert (result.code, result.sub_code) == ("40002", "isv.invalid-app-id")


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("", "not a JSON object"),
        ("<html>502 Bad Gateway</html>", "not a JSON object"),
        ("[1]", "not a JSON object"),
        ('{"alipay_trade_refund_response":{"code":"10000"}', "not closed"),
        ('{"alipay_trade_refund_response":{"code":"10000"},"sign":"x"} x', "follows"),
        ('{"sign":"x"}', "no alipay_trade_refund_response"),
        ('{"alipay_trade_query_response":{},"sign":"x"}', "no alipay_trade_refund_response"),
        ('{"alipay_trade_refund_response":"text","sign":"x"}', "not a JSON object"),
        ('{"alipay_trade_refund_response":{},"sign":5}', "not a JSON string"),
        ('{"alipay_trade_refund_response":{],"sign":"x"}', "brackets"),
        ('{"alipay_trade_refund_response":{"a":tru},"sign":"x"}', "not valid JSON"),
        ('{"alipay_trade_refund_response":{},"alipay_trade_refund_response":{}}', "twice"),
        ('{"alipay_trade_refund_response":{},"error_response":{},"sign":"x"}', "both"),
        ('{"alipay_trade_refund_response" {},"sign":"x"}', "':'"),
        ('{"alipay_trade_refund_response":{"a":"b\x01"},"sign":"x"}', "string"),
    ],
)
def test_malformed_answers_are_named(raw: str, problem: str) -> None:
    with pytest.raises(AnswerShapeError, match=problem):
        extract_signed(raw, TRADE_REFUND)
    result = read_answer(raw, TRADE_REFUND, ALIPAY_PUBLIC)
    assert isinstance(result, Unverifiable)


def test_a_key_repeated_inside_the_member_is_refused() -> None:
    raw = answer_body('{"code":"10000","fund_change":"N","fund_change":"Y"}')
    result = read_answer(raw, TRADE_REFUND, ALIPAY_PUBLIC)
    assert isinstance(result, Unverifiable) and "twice" in result.reason


def test_a_member_without_code_is_unverifiable() -> None:
    result = read_answer(answer_body('{"msg":"Success"}'), TRADE_REFUND, ALIPAY_PUBLIC)
    assert isinstance(result, Unverifiable) and "no code" in result.reason


def test_an_oversized_answer_is_refused() -> None:
    with pytest.raises(AnswerShapeError, match="longer"):
        extract_signed(" " * (256 * 1024 + 1), TRADE_REFUND)


def test_body_text_is_strict_utf8() -> None:
    assert body_text('{"a":"红"}'.encode()) == '{"a":"红"}'
    assert body_text("红".encode("gbk")) is None


def test_numbers_are_kept_as_written() -> None:
    member = '{"code":10000,"msg":"Success","refund_status":"REFUND_SUCCESS","refund_amount":12.5}'
    raw = signed_answer(TRADE_REFUND_QUERY, member, ALIPAY_PRIVATE)
    answer = read_answer(raw, TRADE_REFUND_QUERY, ALIPAY_PUBLIC)
    assert isinstance(answer, Answer) and answer.code == "10000"
    assert isinstance(answer.body, TradeRefundQueryResult)
    assert answer.body.refund_amount == Decimal("12.50")
    assert answer.body.refund_status == "REFUND_SUCCESS"


def test_a_coupon_refund_answer_is_typed() -> None:
    member = (
        '{"code":"10000","msg":"Success","auth_no":"2018081710002001860231318890",'
        '"out_request_no":"refund20171228254","operation_id":"20180817000000123",'
        '"amount":"0.01","status":"SUCCESS","gmt_trans":"2018-08-17 10:00:00"}'
    )
    raw = signed_answer(COUPON_REFUND, member, ALIPAY_PRIVATE)
    answer = read_answer(raw, COUPON_REFUND, ALIPAY_PUBLIC)
    assert isinstance(answer, Answer)
    assert answer.body == CouponOperationResult(
        auth_no="2018081710002001860231318890",
        out_request_no="refund20171228254",
        operation_id="20180817000000123",
        amount=Decimal("0.01"),
        status="SUCCESS",
        gmt_trans="2018-08-17 10:00:00",
    )


# Any JSON object, written with random layout, escapes and whitespace.
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**12), max_value=10**12)
    | st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)
_WHITESPACE = st.text(alphabet=" \t\r\n", max_size=3)


@st.composite
def json_object_text(draw: st.DrawFn) -> str:
    obj = draw(st.dictionaries(st.text(max_size=8), _VALUES, max_size=6))
    indent = draw(st.sampled_from([None, 0, 2]))
    separators = draw(st.sampled_from([(",", ":"), (", ", ": "), (" ,", " : ")]))
    text = json.dumps(obj, ensure_ascii=draw(st.booleans()), indent=indent, separators=separators)
    if draw(st.booleans()):
        text = text.replace("/", "\\/")
    return text


@settings(max_examples=200, deadline=None)
@given(json_object_text(), _WHITESPACE, _WHITESPACE, _WHITESPACE, st.booleans())
def test_extraction_returns_any_embedded_object_exactly(
    member: str, ws1: str, ws2: str, ws3: str, sign_first: bool
) -> None:
    sign_part = f'"sign"{ws2}:{ws1}"c2lnbg=="'
    member_part = f'"x_response"{ws1}:{ws3}{member}'
    parts = (sign_part, member_part) if sign_first else (member_part, sign_part)
    raw = f"{ws1}{{{ws2}{parts[0]}{ws3},{ws1}{parts[1]}{ws2}}}{ws3}"
    part = extract_signed(raw, "x")
    assert part.content == member
    assert part.sign == "c2lnbg=="
