"""Signed OpenAPI requests: common parameters, biz_content, builders, out_request_no."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.support.openapi import alipay_keys, app_keys, by_hand_signature
from worker.domain.errors import ConfigError, ProtocolError
from worker.openapi import (
    COUPON_QUERY,
    COUPON_REFUND,
    TRADE_REFUND,
    TRADE_REFUND_QUERY,
    OpenApiApp,
    biz_content_json,
    build_request,
    coupon_query_request,
    coupon_refund_request,
    out_request_no,
    remark_text,
    signing_string,
    trade_refund_query_request,
    trade_refund_request,
    verify_rsa2,
)

APP_PRIVATE, APP_PUBLIC = app_keys()
APP = OpenApiApp("2014072300007148", APP_PRIVATE, alipay_keys()[1])
# 01:30 UTC is 09:30 in Beijing.
NOW = datetime(2024, 5, 1, 1, 30, 0, tzinfo=UTC)
TRADE_NO = "2014112611001004680073956707"
AUTH_NO = "2018081710002001860231318890"


def biz(params: dict[str, str]) -> dict[str, str]:
    value = json.loads(params["biz_content"])
    assert isinstance(value, dict)
    return value


def test_build_request_sets_the_common_parameters_and_signs_them() -> None:
    params = build_request(
        APP, method=TRADE_REFUND, biz={"b": "2", "a": "1"}, now=NOW, notify_url=None
    )
    assert params == {
        "app_id": "2014072300007148",
        "method": "alipay.trade.refund",
        "format": "JSON",
        "charset": "utf-8",
        "sign_type": "RSA2",
        "timestamp": "2024-05-01 09:30:00",
        "version": "1.0",
        "biz_content": '{"a":"1","b":"2"}',
        "sign": params["sign"],
    }
    by_hand = (
        'app_id=2014072300007148&biz_content={"a":"1","b":"2"}&charset=utf-8&format=JSON'
        "&method=alipay.trade.refund&sign_type=RSA2&timestamp=2024-05-01 09:30:00&version=1.0"
    )
    assert signing_string(params) == by_hand
    assert params["sign"] == by_hand_signature(by_hand, APP_PRIVATE)
    assert verify_rsa2(by_hand, params["sign"], APP_PUBLIC)


def test_biz_content_is_sorted_compact_and_keeps_chinese() -> None:
    text = biz_content_json({"remark": "红包 退回", "amount": "0.01", "auth_no": "1"})
    assert text == '{"amount":"0.01","auth_no":"1","remark":"红包 退回"}'
    assert text == json.dumps(
        {"remark": "红包 退回", "amount": "0.01", "auth_no": "1"},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )


def test_biz_content_refuses_values_that_are_not_text() -> None:
    with pytest.raises(ProtocolError, match="amount"):
        biz_content_json({"amount": 1})  # type: ignore[dict-item]


def test_a_naive_clock_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        build_request(APP, method=TRADE_REFUND, biz={}, now=datetime(2024, 5, 1), notify_url=None)


@pytest.mark.parametrize(
    ("app", "field"),
    [
        (OpenApiApp("12", APP_PRIVATE, b"k"), "app_id"),
        (OpenApiApp("2014072300007148", b"", b"k"), "private key"),
        (OpenApiApp("2014072300007148", APP_PRIVATE, b""), "public key"),
    ],
)
def test_app_settings_are_checked(app: OpenApiApp, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        build_request(app, method=TRADE_REFUND, biz={}, now=NOW, notify_url=None)


@pytest.mark.parametrize(
    "url",
    [
        "",
        "ftp://x.example/notify",
        "https://x.example/notify?a=1",
        "https://x.example/n#f",
        "https://x.example/通知",
        "https://x.example/" + "a" * 300,
    ],
)
def test_notify_urls_are_checked(url: str) -> None:
    with pytest.raises(ConfigError, match="notify_url"):
        build_request(APP, method=COUPON_REFUND, biz={}, now=NOW, notify_url=url)


def test_method_names_are_checked() -> None:
    with pytest.raises(ProtocolError, match="method"):
        build_request(APP, method="Alipay Trade", biz={}, now=NOW, notify_url=None)


def test_the_app_repr_never_shows_a_key() -> None:
    text = repr(APP) + str(APP)
    assert "2014072300007148" in text and "<set>" in text
    assert "BEGIN" not in text and APP_PRIVATE.decode()[40:80] not in text


def test_trade_refund_request() -> None:
    params = trade_refund_request(
        APP,
        out_request_no="RF_1",
        amount=Decimal("12.5"),
        now=NOW,
        trade_no=TRADE_NO,
        reason="协商退款\n#1",
    )
    assert params["method"] == TRADE_REFUND and "notify_url" not in params
    assert biz(params) == {
        "trade_no": TRADE_NO,
        "out_request_no": "RF_1",
        "refund_amount": "12.50",
        "refund_reason": "协商退款 ＃1",
    }


def test_trade_refund_by_the_merchant_order_number_without_reason() -> None:
    params = trade_refund_request(
        APP, out_request_no="RF_1", amount=Decimal("1"), now=NOW, out_trade_no="SHOP-42"
    )
    assert biz(params) == {
        "out_trade_no": "SHOP-42",
        "out_request_no": "RF_1",
        "refund_amount": "1.00",
    }


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({}, "trade_no or out_trade_no"),
        ({"trade_no": "123"}, "trade_no"),
        ({"out_trade_no": "with space"}, "out_trade_no"),
        ({"trade_no": TRADE_NO, "amount": Decimal("0")}, "amount"),
        ({"trade_no": TRADE_NO, "amount": Decimal("1.001")}, "amount"),
        ({"trade_no": TRADE_NO, "out_request_no": "RF-1"}, "out_request_no"),
        ({"trade_no": TRADE_NO, "out_request_no": "x" * 65}, "out_request_no"),
    ],
)
def test_trade_refund_fields_are_checked(kwargs: dict[str, object], field: str) -> None:
    args: dict[str, object] = {"out_request_no": "RF_1", "amount": Decimal("1"), **kwargs}
    with pytest.raises(ProtocolError, match=field):
        trade_refund_request(APP, now=NOW, **args)  # type: ignore[arg-type]


def test_trade_refund_query_request() -> None:
    params = trade_refund_query_request(APP, out_request_no="RF_1", now=NOW, trade_no=TRADE_NO)
    assert params["method"] == TRADE_REFUND_QUERY
    assert biz(params) == {"trade_no": TRADE_NO, "out_request_no": "RF_1"}


def test_coupon_refund_request_with_notify_url_and_remark() -> None:
    params = coupon_refund_request(
        APP,
        auth_no=AUTH_NO,
        out_request_no="refund20171228254",
        amount=Decimal("0.01"),
        now=NOW,
        notify_url="https://shop.example.com/alipay/notify",
        remark="支付后,剩余红包退款",
    )
    assert params["method"] == COUPON_REFUND
    assert params["notify_url"] == "https://shop.example.com/alipay/notify"
    assert biz(params) == {
        "auth_no": AUTH_NO,
        "out_request_no": "refund20171228254",
        "amount": "0.01",
        "remark": "支付后,剩余红包退款",
    }
    assert verify_rsa2(signing_string(params), params["sign"], APP_PUBLIC)


def test_coupon_query_request() -> None:
    params = coupon_query_request(APP, auth_no=AUTH_NO, out_request_no="R1", now=NOW)
    assert params["method"] == COUPON_QUERY
    assert biz(params) == {"auth_no": AUTH_NO, "out_request_no": "R1"}


def test_coupon_auth_no_is_checked() -> None:
    with pytest.raises(ProtocolError, match="auth_no"):
        coupon_query_request(APP, auth_no="a-b", out_request_no="R1", now=NOW)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a" * 150, "a" * 100),
        ("红" * 80, "红" * 50),
        ("a" + "红" * 60, "a" + "红" * 49),
        ("tab\there^#", "tab here＾＃"),
        ("emoji 😀", "emoji ?"),
    ],
)
def test_remark_holds_100_letters_or_50_chinese_characters(text: str, expected: str) -> None:
    assert remark_text(text) == expected
    assert len(remark_text(text).encode("gbk")) <= 100


def test_out_request_no_keeps_a_plain_id() -> None:
    assert out_request_no("RF_20240501_0001") == "RF_20240501_0001"


def test_out_request_no_maps_other_characters_and_adds_a_hash() -> None:
    mapped = out_request_no("shop-eu:refund.42_a-b")
    assert re.fullmatch(r"shop_eu_refund_42_a_b_x[0-9a-f]{24}", mapped)
    assert out_request_no("shop-eu:refund.42_a-b") == mapped  # stable
    assert out_request_no("shop_eu_refund_42_a_b") != mapped


def test_out_request_no_shortens_a_long_id() -> None:
    long_id = "A" * 100
    assert len(out_request_no(long_id)) == 64
    assert out_request_no(long_id) != out_request_no("A" * 99)


def test_a_plain_id_that_looks_derived_is_derived_again() -> None:
    mapped = out_request_no("a-b")
    assert out_request_no(mapped) != mapped


def test_out_request_no_refuses_an_empty_id() -> None:
    with pytest.raises(ProtocolError, match="refund_id"):
        out_request_no("")


_REFUND_IDS = st.text(st.sampled_from("abcXYZ019_.:-"), min_size=1, max_size=80)


@given(_REFUND_IDS)
def test_out_request_no_is_always_acceptable(refund_id: str) -> None:
    number = out_request_no(refund_id)
    assert re.fullmatch(r"[A-Za-z0-9_]{1,64}", number)
    assert out_request_no(refund_id) == number


@given(_REFUND_IDS, _REFUND_IDS)
def test_two_refund_ids_never_share_an_out_request_no(first: str, second: str) -> None:
    if first != second:
        assert out_request_no(first) != out_request_no(second)


@given(_REFUND_IDS)
def test_a_derived_number_used_as_a_refund_id_gets_another_number(refund_id: str) -> None:
    number = out_request_no(refund_id)
    if number != refund_id:
        assert out_request_no(number) != number
