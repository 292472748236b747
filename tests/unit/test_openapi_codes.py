"""What each OpenAPI answer establishes about a refund: `classify`, code by code."""

from __future__ import annotations

from decimal import Decimal
from types import MappingProxyType

import pytest

from tests.support.openapi import alipay_keys, signed_answer
from worker.openapi import (
    COUPON_QUERY,
    COUPON_REFUND,
    TRADE_REFUND,
    TRADE_REFUND_QUERY,
    Answer,
    MemberKind,
    Settlement,
    Unverifiable,
    Verdict,
    classify,
    read_answer,
)
from worker.openapi.answers import read_body

ALIPAY_PRIVATE, ALIPAY_PUBLIC = alipay_keys()
METHODS = [TRADE_REFUND, TRADE_REFUND_QUERY, COUPON_REFUND, COUPON_QUERY]
REFUNDS = [TRADE_REFUND, COUPON_REFUND]
QUERIES = [TRADE_REFUND_QUERY, COUPON_QUERY]


def answer(
    method: str,
    code: str = "10000",
    sub_code: str | None = None,
    member: MemberKind = MemberKind.RESPONSE,
    **fields: str,
) -> Answer:
    view = MappingProxyType(dict(fields))
    return Answer(
        method=method,
        member=member,
        code=code,
        msg="",
        sub_code=sub_code,
        sub_msg=None,
        fields=view,
        body=read_body(method, view) if member is MemberKind.RESPONSE else None,
    )


def test_fund_change_y_is_success_with_the_trade_ids() -> None:
    result = classify(
        answer(
            TRADE_REFUND,
            fund_change="Y",
            trade_no="2014112611001004680073956707",
            out_trade_no="6823789339978248",
            gmt_refund_pay="2014-11-27 15:45:57",
        )
    )
    assert result.verdict is Verdict.SUCCEEDED
    assert result.settlement == Settlement(
        trade_no="2014112611001004680073956707",
        out_trade_no="6823789339978248",
        settled_at="2014-11-27 15:45:57",
    )


@pytest.mark.parametrize("fund_change", ["N", None, "", "y", "maybe"])
def test_fund_change_other_than_y_needs_a_query(fund_change: str | None) -> None:
    fields = {} if fund_change is None else {"fund_change": fund_change}
    assert classify(answer(TRADE_REFUND, **fields)).verdict is Verdict.NEEDS_QUERY


def test_trade_query_refund_success() -> None:
    result = classify(
        answer(TRADE_REFUND_QUERY, refund_status="REFUND_SUCCESS", refund_amount="12.50")
    )
    assert result.verdict is Verdict.SUCCEEDED
    assert result.settlement is not None and result.settlement.amount == Decimal("12.50")


def test_trade_query_without_refund_status_means_not_refunded() -> None:
    assert classify(answer(TRADE_REFUND_QUERY)).verdict is Verdict.NOT_FOUND
    assert classify(answer(TRADE_REFUND_QUERY, refund_status="")).verdict is Verdict.NOT_FOUND


def test_trade_query_with_an_unknown_refund_status_is_unknown() -> None:
    assert classify(answer(TRADE_REFUND_QUERY, refund_status="ODD")).verdict is Verdict.UNKNOWN


@pytest.mark.parametrize("method", [COUPON_REFUND, COUPON_QUERY])
@pytest.mark.parametrize(
    ("status", "verdict", "code"),
    [
        ("SUCCESS", Verdict.SUCCEEDED, None),
        ("INIT", Verdict.IN_PROGRESS, None),
        ("CLOSED", Verdict.REFUSED, "CLOSED"),
    ],
)
def test_coupon_statuses(method: str, status: str, verdict: Verdict, code: str | None) -> None:
    result = classify(
        answer(method, status=status, operation_id="2018081700001", gmt_trans="2018-08-17 10:00:00")
    )
    assert (result.verdict, result.code) == (verdict, code)
    if verdict is Verdict.SUCCEEDED:
        assert result.settlement is not None
        assert result.settlement.operation_id == "2018081700001"
        assert result.settlement.settled_at == "2018-08-17 10:00:00"


def test_coupon_refund_without_a_known_status_needs_a_query() -> None:
    assert classify(answer(COUPON_REFUND)).verdict is Verdict.NEEDS_QUERY
    assert classify(answer(COUPON_REFUND, status="ODD")).verdict is Verdict.NEEDS_QUERY
    assert classify(answer(COUPON_QUERY, status="ODD")).verdict is Verdict.UNKNOWN


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("sub_code", ["isp.unknow-error", "aop.unknow-error", "ACQ.SYSTEM_ERROR"])
def test_20000_is_unknown_with_every_sub_code(method: str, sub_code: str) -> None:
    assert classify(answer(method, "20000", sub_code)).verdict is Verdict.UNKNOWN


@pytest.mark.parametrize("code", ["10000", "40004", "40002"])
@pytest.mark.parametrize("sub_code", ["isp.unknow-error", "aop.unknow-error", "ACQ.SYSTEM_ERROR"])
def test_a_system_error_sub_code_is_unknown_whatever_the_code(code: str, sub_code: str) -> None:
    assert classify(answer(TRADE_REFUND, code, sub_code, fund_change="Y")).verdict is (
        Verdict.UNKNOWN
    )


@pytest.mark.parametrize("method", REFUNDS)
@pytest.mark.parametrize(
    "sub_code",
    [
        "ACQ.TRADE_NOT_EXIST",
        "ACQ.TRADE_STATUS_ERROR",
        "ACQ.SELLER_BALANCE_NOT_ENOUGH",
        "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL",
        "ACQ.TRADE_HAS_FINISHED",
        "PAYER_NOT_EXIST",
    ],
)
def test_40004_with_a_business_sub_code_refuses_the_refund(method: str, sub_code: str) -> None:
    result = classify(answer(method, "40004", sub_code))
    assert (result.verdict, result.code) == (Verdict.REFUSED, sub_code)


@pytest.mark.parametrize("sub_code", [None, "", "bad code!", "isp.other", "aop.other"])
def test_40004_without_a_business_sub_code_is_unknown(sub_code: str | None) -> None:
    assert classify(answer(TRADE_REFUND, "40004", sub_code)).verdict is Verdict.UNKNOWN


def test_a_discordant_repeat_needs_a_query() -> None:
    result = classify(answer(TRADE_REFUND, "40004", "ACQ.DISCORDANT_REPEAT_REQUEST"))
    assert (result.verdict, result.code) == (Verdict.NEEDS_QUERY, "ACQ.DISCORDANT_REPEAT_REQUEST")


@pytest.mark.parametrize("method", QUERIES)
def test_a_refused_query_says_nothing_about_the_refund(method: str) -> None:
    result = classify(answer(method, "40004", "ACQ.TRADE_NOT_EXIST"))
    assert (result.verdict, result.code) == (Verdict.UNKNOWN, "ACQ.TRADE_NOT_EXIST")


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(
    ("code", "sub_code"),
    [
        ("40001", "isv.missing-signature"),
        ("40002", "isv.invalid-signature"),
        ("40006", "isv.insufficient-isv-permissions"),
        ("20001", "aop.invalid-auth-token"),
        ("40002", None),
    ],
)
def test_configuration_codes(method: str, code: str, sub_code: str | None) -> None:
    result = classify(answer(method, code, sub_code))
    assert (result.verdict, result.code) == (Verdict.CONFIG_ERROR, sub_code or code)


@pytest.mark.parametrize("code", ["30000", "40003", "99999", "", "SUCCESS"])
def test_unknown_codes_are_unknown(code: str) -> None:
    assert classify(answer(TRADE_REFUND, code, fund_change="Y")).verdict is Verdict.UNKNOWN


def test_an_error_response_claiming_success_is_unknown() -> None:
    result = classify(answer(TRADE_REFUND, "10000", member=MemberKind.ERROR))
    assert result.verdict is Verdict.UNKNOWN


def test_a_signed_error_response_is_read_like_the_member() -> None:
    result = classify(answer(TRADE_REFUND, "40002", "isv.invalid-app-id", member=MemberKind.ERROR))
    assert result.verdict is Verdict.CONFIG_ERROR


def test_an_empty_sign_error_response_is_no_answer() -> None:
    member = '{"code":"40004","msg":"Business Failed","sub_code":"ACQ.TRADE_NOT_EXIST"}'
    raw = f'{{"error_response":{member},"sign":""}}'
    read = read_answer(raw, TRADE_REFUND, ALIPAY_PUBLIC)
    assert isinstance(read, Unverifiable)
    assert classify(read).verdict is Verdict.UNKNOWN


def test_unverifiable_is_unknown() -> None:
    assert classify(Unverifiable("timeout")).verdict is Verdict.UNKNOWN


def test_success_from_another_api_is_unknown() -> None:
    assert classify(answer("alipay.trade.query")).verdict is Verdict.UNKNOWN


def test_end_to_end_from_a_signed_body() -> None:
    member = '{"code":"40004","msg":"Business Failed","sub_code":"ACQ.TRADE_HAS_FINISHED"}'
    read = read_answer(
        signed_answer(TRADE_REFUND, member, ALIPAY_PRIVATE), TRADE_REFUND, ALIPAY_PUBLIC
    )
    result = classify(read)
    assert (result.verdict, result.code) == (Verdict.REFUSED, "ACQ.TRADE_HAS_FINISHED")


@pytest.mark.parametrize(
    ("code", "sub_code"),
    [
        ("40002", "isv.invalid-app-id"),
        ("40001", "isv.missing-signature"),
        ("40006", "isv.insufficient-isv-permissions"),
        ("20001", "aop.invalid-auth-token"),
    ],
)
def test_an_unsigned_gateway_refusal_of_the_setup_is_a_configuration_error(
    code: str, sub_code: str
) -> None:
    # The gateway refuses an unknown app (and other setup errors) before any business is
    # done, without a signature: it proves nothing was refunded, so it halts the channel
    # (refunds kept) instead of being retried as an unknown outcome forever.
    member = f'{{"code":"{code}","msg":"Invalid Arguments","sub_code":"{sub_code}"}}'
    for sign in ('"sign":""', None):
        raw = f'{{"error_response":{member}' + (f",{sign}}}" if sign else "}")
        read = read_answer(raw, TRADE_REFUND, ALIPAY_PUBLIC)
        assert isinstance(read, Unverifiable)
        assert classify(read).verdict is Verdict.CONFIG_ERROR


def test_an_unsigned_answer_is_never_a_refusal_or_a_success() -> None:
    for member, name in (
        ('{"code":"40004","sub_code":"ACQ.TRADE_NOT_EXIST"}', "error_response"),
        ('{"code":"40002","sub_code":"isv.invalid-app-id"}', "alipay_trade_refund_response"),
        ('{"code":"10000","fund_change":"Y"}', "alipay_trade_refund_response"),
    ):
        read = read_answer(f'{{"{name}":{member},"sign":""}}', TRADE_REFUND, ALIPAY_PUBLIC)
        assert classify(read).verdict is Verdict.UNKNOWN
