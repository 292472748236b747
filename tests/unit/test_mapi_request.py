"""The signed refund request, the gateway URL and the notify_verify query."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from worker.domain.errors import (
    ConfigError,
    DetailDataError,
    NotifyFormatError,
    ProtocolError,
    SigningError,
)
from worker.mapi import (
    Merchant,
    RefundItem,
    build_refund_request,
    decode_detail_data,
    decode_form,
    encode_form,
    gateway_url_with_charset,
    make_batch_no,
    notify_verify_params,
    signing_string,
    verify,
)

MD5_KEY = "t3stk3yt3stk3yt3stk3yt3stk3y0000"
_PRIVATE = rsa.generate_private_key(public_exponent=65537, key_size=1024)
PRIVATE_PEM = _PRIVATE.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
).decode()
PUBLIC_PEM = _PRIVATE.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
)
NOW = datetime(2016, 8, 18, 10, 49, 51, tzinfo=UTC)  # 18:49:51 in Beijing
BATCH_NO = make_batch_no(NOW, "103")
ITEM = RefundItem("2016081821001004270231872174", Decimal("0.01"), "协商退款")
MERCHANT = Merchant(
    partner="2088101008267254",
    charset="utf-8",
    sign_type="MD5",
    md5_key=MD5_KEY,
    notify_url="http://www.test.com/admin/api/refund/alipay/notify_url.php",
    dback_notify_url="http://www.test.com/admin/api/refund/alipay/dback_notify_url.php",
)


def test_full_nopwd_parameter_set_signed_md5() -> None:
    params = build_refund_request(MERCHANT, batch_no=BATCH_NO, items=[ITEM], now=NOW)
    assert params == {
        "service": "refund_fastpay_by_platform_nopwd",
        "partner": "2088101008267254",
        "_input_charset": "utf-8",
        "notify_url": "http://www.test.com/admin/api/refund/alipay/notify_url.php",
        "dback_notify_url": "http://www.test.com/admin/api/refund/alipay/dback_notify_url.php",
        "batch_no": "20160818103",
        "refund_date": "2016-08-18 18:49:51",
        "batch_num": "1",
        "detail_data": "2016081821001004270231872174^0.01^协商退款",
        "use_freeze_amount": "N",
        "return_type": "xml",
        "sign": params["sign"],
        "sign_type": "MD5",
    }
    by_hand = (
        "_input_charset=utf-8&batch_no=20160818103&batch_num=1"
        "&dback_notify_url=http://www.test.com/admin/api/refund/alipay/dback_notify_url.php"
        "&detail_data=2016081821001004270231872174^0.01^协商退款"
        "&notify_url=http://www.test.com/admin/api/refund/alipay/notify_url.php"
        "&partner=2088101008267254&refund_date=2016-08-18 18:49:51&return_type=xml"
        "&service=refund_fastpay_by_platform_nopwd&use_freeze_amount=N"
    )
    assert params["sign"] == hashlib.md5((by_hand + MD5_KEY).encode("utf-8")).hexdigest()
    assert verify(params, charset="utf-8", md5_key=MD5_KEY)


def test_gbk_merchant_signs_gbk_bytes_and_keeps_its_charset_spelling() -> None:
    merchant = Merchant(partner="2088101008267254", charset="GBK", md5_key=MD5_KEY)
    params = build_refund_request(merchant, batch_no=BATCH_NO, items=[ITEM], now=NOW)
    assert params["_input_charset"] == "GBK"
    expected = hashlib.md5(signing_string(params).encode("gbk") + MD5_KEY.encode()).hexdigest()
    assert params["sign"] == expected
    body = encode_form(params, "GBK")
    assert b"%D0%AD%C9%CC%CD%CB%BF%EE" in body
    assert verify(decode_form(body, "GBK"), charset="GBK", md5_key=MD5_KEY)


def test_rsa_merchant() -> None:
    merchant = Merchant(partner="2088101008267254", sign_type="RSA", private_key_pem=PRIVATE_PEM)
    params = build_refund_request(merchant, batch_no=BATCH_NO, items=[ITEM], now=NOW)
    assert params["sign_type"] == "RSA"
    _PRIVATE.public_key().verify(
        base64.b64decode(params["sign"]),
        signing_string(params).encode("utf-8"),
        padding.PKCS1v15(),
        hashes.SHA1(),
    )
    assert verify(params, charset="utf-8", public_key_pem=PUBLIC_PEM)


def test_reasons_are_sanitized_and_amounts_written_with_two_decimals() -> None:
    items = [
        RefundItem("2016081821001004270231872174", Decimal("5"), "退款#1|^$\n😀"),
        RefundItem("2016082721001004640239968415", Decimal("160.5"), "x" * 300),
    ]
    merchant = Merchant(partner="2088101008267254", charset="gbk", md5_key=MD5_KEY)
    params = build_refund_request(merchant, batch_no=BATCH_NO, items=items, now=NOW)
    assert params["batch_num"] == "2"
    decoded = decode_detail_data(params["detail_data"], charset="gbk")
    assert decoded[0] == RefundItem(items[0].trade_no, Decimal("5.00"), "退款＃1｜＾＄ ?")
    assert decoded[1].reason == "x" * 256 and decoded[1].amount == Decimal("160.50")
    assert "^5.00^" in params["detail_data"] and "^160.50^" in params["detail_data"]


def test_use_freeze_amount_and_optional_urls() -> None:
    merchant = Merchant(partner="2088101008267254", md5_key=MD5_KEY)
    params = build_refund_request(
        merchant, batch_no=BATCH_NO, items=[ITEM], now=NOW, use_freeze_amount=True
    )
    assert params["use_freeze_amount"] == "Y"
    assert "notify_url" not in params and "dback_notify_url" not in params


def test_pwd_service_needs_a_seller_and_drops_nopwd_only_fields() -> None:
    params = build_refund_request(
        MERCHANT,
        batch_no=BATCH_NO,
        items=[ITEM],
        now=NOW,
        service="refund_fastpay_by_platform_pwd",
        seller_email="Jier1105@alitest.com",
    )
    assert params["service"] == "refund_fastpay_by_platform_pwd"
    assert params["seller_email"] == "Jier1105@alitest.com"
    for absent in ("dback_notify_url", "use_freeze_amount", "return_type", "seller_user_id"):
        assert absent not in params
    assert verify(params, charset="utf-8", md5_key=MD5_KEY)
    by_id = build_refund_request(
        MERCHANT,
        batch_no=BATCH_NO,
        items=[ITEM],
        now=NOW,
        service="refund_fastpay_by_platform_pwd",
        seller_user_id="2088101008267254",
    )
    assert by_id["seller_user_id"] == "2088101008267254"
    with pytest.raises(ProtocolError, match="needs seller_user_id or seller_email"):
        build_refund_request(
            MERCHANT,
            batch_no=BATCH_NO,
            items=[ITEM],
            now=NOW,
            service="refund_fastpay_by_platform_pwd",
        )


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"service": "refund_fastpay_by_platform"}, "unknown refund service"),
        ({"seller_email": "a@b.com"}, "only apply to refund_fastpay_by_platform_pwd"),
        (
            {"service": "refund_fastpay_by_platform_pwd", "seller_user_id": "1234"},
            "seller_user_id",
        ),
        (
            {"service": "refund_fastpay_by_platform_pwd", "seller_email": "a b@c"},
            "seller_email",
        ),
        (
            {
                "service": "refund_fastpay_by_platform_pwd",
                "seller_email": "a@b.c",
                "use_freeze_amount": True,
            },
            "use_freeze_amount",
        ),
    ],
)
def test_service_and_seller_rules(options: dict[str, object], problem: str) -> None:
    with pytest.raises(ProtocolError, match=problem):
        build_refund_request(MERCHANT, batch_no=BATCH_NO, items=[ITEM], now=NOW, **options)  # type: ignore[arg-type]


def test_batch_no_must_carry_the_beijing_date_of_now() -> None:
    late = datetime(2016, 8, 18, 16, 30, tzinfo=UTC)  # 19 Aug in Beijing
    with pytest.raises(DetailDataError, match="20160819"):
        build_refund_request(MERCHANT, batch_no="20160818001", items=[ITEM], now=late)
    params = build_refund_request(MERCHANT, batch_no="20160819001", items=[ITEM], now=late)
    assert params["refund_date"] == "2016-08-19 00:30:00"
    with pytest.raises(DetailDataError, match="batch_no"):
        build_refund_request(MERCHANT, batch_no="20160818000", items=[ITEM], now=NOW)
    with pytest.raises(ValueError, match="naive"):
        build_refund_request(
            MERCHANT, batch_no=BATCH_NO, items=[ITEM], now=NOW.replace(tzinfo=None)
        )


def test_item_rules_apply() -> None:
    with pytest.raises(DetailDataError, match="twice"):
        build_refund_request(MERCHANT, batch_no=BATCH_NO, items=[ITEM, ITEM], now=NOW)
    with pytest.raises(DetailDataError, match="at least one"):
        build_refund_request(MERCHANT, batch_no=BATCH_NO, items=[], now=NOW)


@pytest.mark.parametrize(
    ("merchant", "error", "problem"),
    [
        (Merchant(partner="2222221624104006", md5_key=MD5_KEY), ConfigError, "2088"),
        (Merchant(partner="208810100826725", md5_key=MD5_KEY), ConfigError, "2088"),
        (
            Merchant(partner="2088101008267254", charset="gb2312", md5_key=MD5_KEY),
            ConfigError,
            "charset",
        ),
        (
            Merchant(partner="2088101008267254", sign_type="DSA", md5_key=MD5_KEY),
            ConfigError,
            "sign_type",
        ),
        (
            Merchant(partner="2088101008267254", md5_key=MD5_KEY, notify_url="http://x.com/n?id=1"),
            ConfigError,
            "notify_url must not carry a query",
        ),
        (
            Merchant(partner="2088101008267254", md5_key=MD5_KEY, notify_url="ftp://x.com/n"),
            ConfigError,
            "notify_url must be an absolute http",
        ),
        (
            Merchant(
                partner="2088101008267254",
                md5_key=MD5_KEY,
                dback_notify_url="http://x.com/" + "a" * 200,
            ),
            ConfigError,
            "dback_notify_url is longer than 200",
        ),
        (Merchant(partner="2088101008267254"), SigningError, "MD5 key"),
        (
            Merchant(partner="2088101008267254", sign_type="RSA", md5_key=MD5_KEY),
            SigningError,
            "private key",
        ),
    ],
)
def test_merchant_settings_are_checked(
    merchant: Merchant, error: type[Exception], problem: str
) -> None:
    with pytest.raises(error, match=problem) as info:
        build_refund_request(merchant, batch_no=BATCH_NO, items=[ITEM], now=NOW)
    assert MD5_KEY not in str(info.value)


def test_merchant_repr_never_shows_keys() -> None:
    merchant = Merchant(partner="2088101008267254", md5_key=MD5_KEY, private_key_pem=PRIVATE_PEM)
    for text in (repr(merchant), str(merchant), f"{merchant}", repr([merchant])):
        assert MD5_KEY not in text and "PRIVATE KEY" not in text
        assert "2088101008267254" in text and "md5_key=<set>" in text
    assert "md5_key=<unset>" in repr(Merchant(partner="2088101008267254"))


@pytest.mark.parametrize(
    ("url", "charset", "expected"),
    [
        (
            "https://mapi.alipay.com/gateway.do",
            "utf-8",
            "https://mapi.alipay.com/gateway.do?_input_charset=utf-8",
        ),
        (
            "https://mapi.alipay.com/gateway.do",
            "GBK",
            "https://mapi.alipay.com/gateway.do?_input_charset=GBK",
        ),
        (
            "http://127.0.0.1:8000/gateway.do?_input_charset=gbk&x=1",
            "UTF-8",
            "http://127.0.0.1:8000/gateway.do?x=1&_input_charset=UTF-8",
        ),
    ],
)
def test_gateway_url_with_charset(url: str, charset: str, expected: str) -> None:
    assert gateway_url_with_charset(url, charset) == expected


@pytest.mark.parametrize(
    ("url", "charset"), [("mapi.alipay.com/gateway.do", "utf-8"), ("https://x/", "latin-1")]
)
def test_gateway_url_with_charset_refuses_bad_input(url: str, charset: str) -> None:
    with pytest.raises(ConfigError):
        gateway_url_with_charset(url, charset)


def test_notify_verify_params() -> None:
    assert notify_verify_params("2088101008267254", "86742cf72c3edb4f2818e67799d873cmva") == {
        "service": "notify_verify",
        "partner": "2088101008267254",
        "notify_id": "86742cf72c3edb4f2818e67799d873cmva",
    }
    with pytest.raises(ConfigError, match="2088"):
        notify_verify_params("1234", "abc")
    for bad in ("", "a b", "x" * 129, "退款"):
        with pytest.raises(NotifyFormatError, match="notify_id"):
            notify_verify_params("2088101008267254", bad)


def test_request_time_in_another_zone_same_instant() -> None:
    elsewhere = NOW.astimezone(timezone(timedelta(hours=-7)))
    a = build_refund_request(MERCHANT, batch_no=BATCH_NO, items=[ITEM], now=NOW)
    b = build_refund_request(MERCHANT, batch_no=BATCH_NO, items=[ITEM], now=elsewhere)
    assert a == b
