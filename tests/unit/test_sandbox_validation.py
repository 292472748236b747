"""The sandbox gateway's stateless checks: each rule, its code, and the order they run in."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sandbox.config import default_seller_email
from sandbox.detail_rules import detail_data_problem
from sandbox.query import RefundQuery
from sandbox.validation import (
    GatewayContext,
    NotifyVerifyQuery,
    RefundRequest,
    Refusal,
    check_gateway_request,
)
from tests.support.sandbox import PARTNER, merchant_rsa_keys, refund_params, resign, trade_no
from worker.mapi import SERVICE_PWD, RefundItem, beijing_date, encode_form, sanitize_reason

KEY = "0123456789abcdef0123456789abcdef"
NOW = datetime(2026, 11, 22, 1, 30, tzinfo=UTC)  # 09:30 in Beijing
FORM = "application/x-www-form-urlencoded; charset=utf-8"
PRIVATE, PUBLIC = merchant_rsa_keys()
CTX = GatewayContext.single(PARTNER, KEY, PUBLIC, beijing_date(NOW))


def params(**kwargs: object) -> dict[str, str]:
    kwargs.setdefault("md5_key", KEY)
    kwargs.setdefault("now", NOW)
    kwargs.setdefault("notify_url", "http://127.0.0.1:8080/alipay/notify")
    if kwargs.get("sign_type") == "RSA":
        kwargs["private_key"] = PRIVATE
        kwargs["md5_key"] = None
    return refund_params(**kwargs)  # type: ignore[arg-type]


def check(
    p: Mapping[str, str],
    *,
    charset: str = "utf-8",
    query: bytes | None = None,
    content_type: str = FORM,
    ctx: GatewayContext = CTX,
) -> RefundRequest | Refusal | NotifyVerifyQuery | RefundQuery:
    q = f"_input_charset={charset}".encode() if query is None else query
    return check_gateway_request(q, encode_form(p, charset), content_type, ctx)


def code_of(verdict: object) -> str:
    assert isinstance(verdict, Refusal), verdict
    return verdict.code


def changed(p: Mapping[str, str], **values: str | None) -> dict[str, str]:
    """`p` with values replaced (None removes) and signed again with the MD5 key."""
    out = dict(p)
    for key, value in values.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return resign(out, md5_key=KEY)


# -- accepted requests ---------------------------------------------------------------


def test_md5_utf8_request_passes_with_its_items() -> None:
    items = [
        RefundItem(trade_no(), Decimal("5.00"), "协商退款"),
        RefundItem(trade_no(), Decimal("0.01"), ""),
    ]
    verdict = check(params(items=items))
    assert isinstance(verdict, RefundRequest)
    assert verdict.items == tuple(items)
    assert verdict.sign_type == "MD5"
    assert verdict.charset == "utf-8"
    assert verdict.notify_url == "http://127.0.0.1:8080/alipay/notify"


def test_rsa_gbk_request_passes_and_reads_the_reason_in_gbk() -> None:
    items = [RefundItem(trade_no(), Decimal("12.34"), "协商退款 部分")]
    p = params(items=items, sign_type="RSA", charset="gbk")
    verdict = check(p, charset="gbk", content_type="application/x-www-form-urlencoded")
    assert isinstance(verdict, RefundRequest)
    assert verdict.items[0].reason == "协商退款 部分"
    assert verdict.sign_type == "RSA"


def test_get_request_with_every_parameter_in_the_query_string_passes() -> None:
    verdict = check_gateway_request(encode_form(params(), "utf-8"), b"", "", CTX)
    assert isinstance(verdict, RefundRequest)


def test_password_service_needs_the_partner_as_seller() -> None:
    p = params(service=SERVICE_PWD, seller_user_id=PARTNER)
    assert isinstance(check(p), RefundRequest)
    assert code_of(check(changed(p, seller_user_id="2088999999999999"))) == "SELLER_INFO_NOT_EXIST"
    assert code_of(check(changed(p, seller_user_id="12345"))) == "ILLEGAL_USER"
    assert code_of(check(changed(p, seller_user_id=None))) == "ILLEGAL_ARGUMENT"
    own = default_seller_email(PARTNER)
    by_email = check(changed(p, seller_user_id=None, seller_email=own))
    assert isinstance(by_email, RefundRequest) and by_email.seller is not None
    assert by_email.seller.named_by == "seller_email"
    other = changed(p, seller_user_id=None, seller_email="a@b.cn")
    assert code_of(check(other)) == "SELLER_INFO_NOT_EXIST"


def test_password_service_needs_a_notify_url_and_ignores_the_nopwd_parameters() -> None:
    p = params(service=SERVICE_PWD, seller_user_id=PARTNER)
    missing = check(changed(p, notify_url=None))
    assert code_of(missing) == "ILLEGAL_ARGUMENT"
    assert isinstance(missing, Refusal) and "notify_url" in missing.reason
    extra = changed(p, dback_notify_url="not a url", use_freeze_amount="X", return_type="json")
    verdict = check(extra)
    assert isinstance(verdict, RefundRequest)
    assert verdict.ignored == ("dback_notify_url", "use_freeze_amount", "return_type")
    assert verdict.dback_notify_url is None
    # The password-free service still checks them.
    nopwd = changed(params(), use_freeze_amount="X")
    assert code_of(check(nopwd)) == "ILLEGAL_ARGUMENT"


def test_notify_verify_is_recognised_before_anything_else() -> None:
    query = b"service=notify_verify&partner=2088000000000001&notify_id=abc123"
    verdict = check_gateway_request(query, b"", "", CTX)
    assert verdict == NotifyVerifyQuery(partner=PARTNER, notify_id="abc123")


# -- one rule at a time --------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "code"),
    [
        ({"service": None}, "ILLEGAL_SERVICE"),
        ({"service": "create_direct_pay_by_user"}, "ILLEGAL_SERVICE"),
        ({"partner": None}, "ILLEGAL_PARTNER"),
        ({"partner": "2088000000000002"}, "ILLEGAL_PARTNER"),
        ({"partner": "1234567890123456"}, "ILLEGAL_PARTNER"),
        ({"sign_type": None}, "ILLEGAL_SIGN_TYPE"),
        ({"sign_type": "DSA"}, "ILLEGAL_SIGN_TYPE"),
        ({"sign_type": "md5"}, "ILLEGAL_SIGN_TYPE"),
        ({"batch_no": None}, "ILLEGAL_ARGUMENT"),
        ({"refund_date": None}, "ILLEGAL_ARGUMENT"),
        ({"batch_num": None}, "ILLEGAL_ARGUMENT"),
        ({"detail_data": None}, "ILLEGAL_ARGUMENT"),
        ({"notify_url": "http://127.0.0.1:8080/notify?x=1"}, "ILLEGAL_ARGUMENT"),
        ({"notify_url": "ftp://127.0.0.1/notify"}, "ILLEGAL_ARGUMENT"),
        ({"notify_url": "http://example.com/" + "a" * 190}, "ILLEGAL_ARGUMENT"),
        ({"dback_notify_url": "notaurl"}, "ILLEGAL_ARGUMENT"),
        ({"use_freeze_amount": "X"}, "ILLEGAL_ARGUMENT"),
        ({"return_type": "json"}, "ILLEGAL_ARGUMENT"),
        ({"batch_no": "2026112"}, "BATCH_NO_FORMAT_ERROR"),
        ({"batch_no": "20261122000"}, "BATCH_NO_FORMAT_ERROR"),
        ({"batch_no": "20261341abc"}, "BATCH_NO_FORMAT_ERROR"),
        ({"batch_no": "20261122" + "9" * 25}, "BATCH_NO_FORMAT_ERROR"),
        ({"batch_no": "20261121000000000123"}, "BATCH_NO_FORMAT_ERROR"),
        ({"refund_date": "2026-11-22 9:30:00"}, "REFUND_DATE_ERROR"),
        ({"refund_date": "2026/11/22 09:30:00"}, "REFUND_DATE_ERROR"),
        ({"refund_date": "2026-11-21 09:30:00"}, "REFUND_DATE_ERROR"),
        ({"refund_date": "2026-11-22 25:30:00"}, "REFUND_DATE_ERROR"),
        ({"batch_num": "abc"}, "BATCH_NUM_ERROR"),
        ({"batch_num": "0"}, "BATCH_NUM_ERROR"),
        ({"batch_num": "01"}, "BATCH_NUM_ERROR"),
        ({"batch_num": "1001"}, "BATCH_NUM_EXCEED_LIMIT"),
        ({"batch_num": "2"}, "BATCH_NUM_NOT_EQUAL_TOTAL"),
    ],
)
def test_each_parameter_rule_has_its_code(values: dict[str, str | None], code: str) -> None:
    assert code_of(check(changed(params(), **values))) == code


@pytest.mark.parametrize(
    ("detail", "code"),
    [
        ("{t1}^1.00", "DETAIL_DATA_FORMAT_ERROR"),
        ("{t1}^1.00^a^b", "DETAIL_DATA_FORMAT_ERROR"),
        ("123^1.00^short trade", "DETAIL_DATA_FORMAT_ERROR"),
        ("{t1}^1.5^one decimal", "DETAIL_DATA_FORMAT_ERROR"),
        ("{t1}^1^no decimals", "DETAIL_DATA_FORMAT_ERROR"),
        ("{t1}^1.005^three decimals", "DETAIL_DATA_FORMAT_ERROR"),
        ("{t1}^0.00^zero", "DETAIL_DATA_FORMAT_ERROR"),
        ("{t1}^-1.00^negative", "DETAIL_DATA_FORMAT_ERROR"),
        ("{t1}^100000000.01^too much", "DETAIL_DATA_FORMAT_ERROR"),
        ("{t1}^1.00^a$b", "DETAIL_DATA_FORMAT_ERROR"),
        ("{t1}^1.00^royalty|x", "DETAIL_DATA_FORMAT_ERROR"),
        ("{t1}^1.00^a#{t1}^2.00^b", "DUBL_TRADE_NO_IN_SAME_BATCH"),
        ("{t1}^1.00^" + "退" * 86, "SINGLE_DETAIL_DATA_EXCEED_LIMIT"),
        ("{t1}^1.00^" + "r" * 257, "SINGLE_DETAIL_DATA_EXCEED_LIMIT"),
        ("{t1}^1.00^ok#{t2}^1.0^bad second", "DETAIL_DATA_FORMAT_ERROR"),
        ("{t1}^2.50^fee 1.5 back#{t2}^3^bad second", "DETAIL_DATA_FORMAT_ERROR"),
    ],
)
def test_each_item_rule_has_its_code(detail: str, code: str) -> None:
    text = detail.format(t1=trade_no(), t2=trade_no())
    p = changed(params(), detail_data=text, batch_num=str(text.count("#") + 1))
    assert code_of(check(p)) == code


def test_reason_limit_counts_bytes_of_the_request_charset() -> None:
    reason = "退" * 100  # 200 bytes in GBK, 300 in UTF-8
    text = f"{trade_no()}^1.00^{reason}"
    utf8 = changed(params(), detail_data=text)
    assert code_of(check(utf8)) == "SINGLE_DETAIL_DATA_EXCEED_LIMIT"
    gbk = resign({**params(charset="gbk"), "detail_data": text}, md5_key=KEY)
    assert isinstance(check(gbk, charset="gbk"), RefundRequest)


def test_royalty_in_the_password_service_has_its_own_code() -> None:
    p = params(service=SERVICE_PWD, seller_user_id=PARTNER)
    text = f"{trade_no()}^1.00^x|a@b.cn^2088000000000002^c@d.cn^2088000000000003^0.50^r"
    assert code_of(check(changed(p, detail_data=text))) == "PWD_REFUND_NOT_ALLOW_ROYALTY"


def test_batch_of_1001_items_exceeds_the_limit() -> None:
    text = "#".join(f"{trade_no()}^0.01^r" for _ in range(1001))
    p = changed(params(), detail_data=text, batch_num="1000")
    assert code_of(check(p)) == "BATCH_NUM_EXCEED_LIMIT"


def test_batch_of_1000_items_passes() -> None:
    items = [RefundItem(trade_no(), Decimal("0.01"), "r") for _ in range(1000)]
    verdict = check(params(items=items))
    assert isinstance(verdict, RefundRequest)
    assert len(verdict.items) == 1000


# -- signatures and charsets ---------------------------------------------------------


def test_signature_is_checked_over_every_value() -> None:
    p = params()
    assert code_of(check({**p, "detail_data": p["detail_data"].replace("1.00", "9.00")})) == (
        "ILLEGAL_SIGN"
    )
    assert code_of(check({k: v for k, v in p.items() if k != "sign"})) == "ILLEGAL_SIGN"
    assert code_of(check(resign(p, md5_key="another-key-entirely"))) == "ILLEGAL_SIGN"


def test_sign_type_without_a_configured_key_cannot_verify() -> None:
    no_keys = GatewayContext.single(PARTNER, None, None, CTX.today)
    assert code_of(check(params(), ctx=no_keys)) == "ILLEGAL_SIGN"
    assert code_of(check(params(sign_type="RSA"), ctx=no_keys)) == "ILLEGAL_SIGN"
    other_public = merchant_rsa_keys.__wrapped__()[1]
    other = GatewayContext.single(PARTNER, KEY, other_public, CTX.today)
    assert code_of(check(params(sign_type="RSA"), ctx=other)) == "ILLEGAL_SIGN"


def test_md5_signature_is_over_gbk_bytes_for_a_gbk_request() -> None:
    items = [RefundItem(trade_no(), Decimal("1.00"), "协商退款")]
    gbk = params(items=items, charset="gbk")
    assert isinstance(check(gbk, charset="gbk"), RefundRequest)
    # The same values signed over UTF-8 bytes do not verify as GBK.
    utf8_signed = resign(gbk, md5_key=KEY, charset="utf-8")
    assert code_of(check(utf8_signed, charset="gbk")) == "ILLEGAL_SIGN"


def test_charset_rules() -> None:
    p = params(charset="gbk", items=[RefundItem(trade_no(), Decimal("1.00"), "协商退款")])
    body = encode_form(p, "gbk")
    # GBK bytes declared as UTF-8 (query string wins over the form).
    verdict = check_gateway_request(b"_input_charset=utf-8", body, FORM, CTX)
    assert code_of(verdict) == "ILLEGAL_CHARSET"
    assert code_of(check(p, charset="gbk", query=b"_input_charset=latin1")) == "ILLEGAL_CHARSET"
    no_charset = {k: v for k, v in params().items() if k != "_input_charset"}
    assert code_of(check(no_charset, query=b"")) == "ILLEGAL_CHARSET"
    # Without a query string, the form's own _input_charset is used.
    assert isinstance(check(p, charset="gbk", query=b""), RefundRequest)


def test_query_string_value_wins_over_the_form_as_in_seed_002() -> None:
    """Signed with `UTF-8` in the form but `utf-8` in the URL: the signature fails."""
    upper = params(charset="UTF-8")
    assert isinstance(check(upper, charset="UTF-8"), RefundRequest)
    verdict = check_gateway_request(b"_input_charset=utf-8", encode_form(upper, "utf-8"), FORM, CTX)
    assert code_of(verdict) == "ILLEGAL_SIGN"


def test_repeated_parameter_in_the_body_is_an_illegal_argument() -> None:
    body = encode_form(params(), "utf-8") + b"&batch_num=1"
    verdict = check_gateway_request(b"_input_charset=utf-8", body, FORM, CTX)
    assert code_of(verdict) == "ILLEGAL_ARGUMENT"


def test_a_body_that_is_not_a_form_carries_no_parameters() -> None:
    verdict = check(params(), content_type="application/json")
    assert code_of(verdict) == "ILLEGAL_SERVICE"


# -- order of the checks ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "code"),
    [
        ({"service": "nope", "partner": "2088000000000009"}, "ILLEGAL_SERVICE"),
        ({"partner": "2088000000000009", "sign_type": "DSA"}, "ILLEGAL_PARTNER"),
        ({"sign_type": "DSA", "batch_no": "bad"}, "ILLEGAL_SIGN_TYPE"),
        ({"batch_no": "bad", "refund_date": "bad"}, "BATCH_NO_FORMAT_ERROR"),
        ({"refund_date": "bad", "batch_num": "bad"}, "REFUND_DATE_ERROR"),
        ({"batch_num": "bad", "detail_data": "bad"}, "BATCH_NUM_ERROR"),
        ({"notify_url": "bad", "batch_no": "bad"}, "ILLEGAL_ARGUMENT"),
    ],
)
def test_first_failing_check_wins(values: dict[str, str], code: str) -> None:
    assert code_of(check(changed(params(), **values))) == code


def test_partner_is_checked_before_the_charset_and_the_charset_before_the_signature() -> None:
    p = changed(params(), partner="2088000000000009")
    assert code_of(check(p, query=b"_input_charset=latin1")) == "ILLEGAL_PARTNER"
    tampered = {**params(), "batch_num": "7"}
    assert code_of(check(tampered, query=b"_input_charset=latin1")) == "ILLEGAL_CHARSET"
    assert code_of(check(tampered)) == "ILLEGAL_SIGN"


def test_signature_is_checked_before_the_parameters() -> None:
    p = {**params(), "batch_no": "bad"}  # not re-signed
    assert code_of(check(p)) == "ILLEGAL_SIGN"


def test_refusal_carries_the_batch_no_for_the_ledger() -> None:
    p = changed(params(), batch_num="2")
    verdict = check(p)
    assert isinstance(verdict, Refusal)
    assert verdict.batch_no == p["batch_no"]


def test_dates_follow_the_context_day() -> None:
    tomorrow = GatewayContext.single(PARTNER, KEY, PUBLIC, CTX.today + timedelta(days=1))
    assert code_of(check(params(), ctx=tomorrow)) == "REFUND_DATE_ERROR"
    late = params(now=NOW + timedelta(days=1))
    assert isinstance(check(late, ctx=tomorrow), RefundRequest)


def test_detail_data_problem_falls_back_to_format_error() -> None:
    assert detail_data_problem(f"{trade_no()}^1.00^fine", "utf-8")[0] == (
        "DETAIL_DATA_FORMAT_ERROR"
    )


# -- properties ----------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    query=st.binary(max_size=300), body=st.binary(max_size=600), ctype=st.sampled_from(["", FORM])
)
def test_any_bytes_get_a_verdict_never_an_exception(query: bytes, body: bytes, ctype: str) -> None:
    verdict = check_gateway_request(query, body, ctype, CTX)
    assert isinstance(verdict, Refusal | NotifyVerifyQuery | RefundRequest)


@settings(max_examples=60, deadline=None)
@given(
    amounts=st.lists(st.integers(min_value=1, max_value=10**10), min_size=1, max_size=20),
    reasons=st.lists(st.text(max_size=40), min_size=20, max_size=20),
    charset=st.sampled_from(["utf-8", "gbk"]),
)
def test_requests_built_by_the_protocol_library_always_pass(
    amounts: list[int], reasons: list[str], charset: str
) -> None:
    items = [
        RefundItem(trade_no(), Decimal(cents) / 100, reasons[i]) for i, cents in enumerate(amounts)
    ]
    verdict = check(params(items=items, charset=charset), charset=charset)
    assert isinstance(verdict, RefundRequest), verdict
    assert [(i.trade_no, i.amount) for i in verdict.items] == [
        (i.trade_no, i.amount.quantize(Decimal("0.01"))) for i in items
    ]
    assert [i.reason for i in verdict.items] == [sanitize_reason(i.reason, charset) for i in items]
