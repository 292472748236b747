"""RSA2 signing of OpenAPI requests and notifications against a by-hand computation."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.openapi import alipay_keys, app_keys, by_hand_signature
from worker.domain.errors import SigningError
from worker.openapi import (
    notification_signing_string,
    sign_content,
    sign_rsa2,
    signing_string,
    verify_rsa2,
)

APP_PRIVATE, APP_PUBLIC = app_keys()
ALIPAY_PRIVATE, ALIPAY_PUBLIC = alipay_keys()

# A request with Chinese text, `&`, `=` and spaces inside values, and an empty value.
PARAMS = {
    "app_id": "2014072300007148",
    "method": "alipay.fund.coupon.order.refund",
    "format": "JSON",
    "charset": "utf-8",
    "sign_type": "RSA2",
    "timestamp": "2024-05-01 09:30:00",
    "version": "1.0",
    "notify_url": "https://shop.example.com/alipay/notify",
    "app_auth_token": "",
    "biz_content": '{"amount":"0.01","auth_no":"2018081710002001860231318890",'
    '"out_request_no":"refund20171228254","remark":"支付后,剩余红包退款 a&b=c"}',
}
# The same set written out by hand: sorted, raw values, no sign, empty value dropped,
# sign_type kept.
PARAMS_STRING = (
    "app_id=2014072300007148"
    '&biz_content={"amount":"0.01","auth_no":"2018081710002001860231318890",'
    '"out_request_no":"refund20171228254","remark":"支付后,剩余红包退款 a&b=c"}'
    "&charset=utf-8"
    "&format=JSON"
    "&method=alipay.fund.coupon.order.refund"
    "&notify_url=https://shop.example.com/alipay/notify"
    "&sign_type=RSA2"
    "&timestamp=2024-05-01 09:30:00"
    "&version=1.0"
)

# A notification: sign and sign_type left out, empty values kept.
NOTIFICATION = {
    "notify_type": "fund_stdtrustee_refund.success",
    "notify_id": "91722adff935e8cfa58b3aabf4dead6ibe",
    "notify_time": "2017-02-16 21:46:15",
    "sign_type": "RSA2",
    "sign": "ignored",
    "auth_no": "2018081710002001860231318890",
    "out_request_no": "refund20171228254",
    "operation_id": "20180817000000123",
    "amount": "0.01",
    "status": "SUCCESS",
    "gmt_trans": "",
    "remark": "红包 退款&a=b",
}
NOTIFICATION_STRING = (
    "amount=0.01"
    "&auth_no=2018081710002001860231318890"
    "&gmt_trans="
    "&notify_id=91722adff935e8cfa58b3aabf4dead6ibe"
    "&notify_time=2017-02-16 21:46:15"
    "&notify_type=fund_stdtrustee_refund.success"
    "&operation_id=20180817000000123"
    "&out_request_no=refund20171228254"
    "&remark=红包 退款&a=b"
    "&status=SUCCESS"
)


def test_request_signing_string_keeps_sign_type_and_drops_empty_values() -> None:
    assert signing_string({**PARAMS, "sign": "x"}) == PARAMS_STRING


def test_request_signature_equals_the_by_hand_computation() -> None:
    # PKCS#1 v1.5 is deterministic: the same key and bytes give the same signature.
    assert sign_rsa2(PARAMS, APP_PRIVATE) == by_hand_signature(PARAMS_STRING, APP_PRIVATE)
    assert verify_rsa2(PARAMS_STRING, sign_rsa2(PARAMS, APP_PRIVATE), APP_PUBLIC)


def test_the_request_signature_covers_sign_type() -> None:
    signature = sign_rsa2(PARAMS, APP_PRIVATE)
    without = PARAMS_STRING.replace("&sign_type=RSA2", "")
    assert not verify_rsa2(without, signature, APP_PUBLIC)


def test_an_empty_value_does_not_change_the_request_signature() -> None:
    params = {k: v for k, v in PARAMS.items() if k != "app_auth_token"}
    assert sign_rsa2(params, APP_PRIVATE) == sign_rsa2(PARAMS, APP_PRIVATE)


def test_notification_string_leaves_out_sign_and_sign_type_and_keeps_empty_values() -> None:
    assert notification_signing_string(NOTIFICATION) == NOTIFICATION_STRING


def test_sign_content_equals_the_by_hand_computation() -> None:
    text = '{"code":"10000","msg":"Success","remark":"红包"}'
    assert sign_content(text, ALIPAY_PRIVATE) == by_hand_signature(text, ALIPAY_PRIVATE)


def test_verify_accepts_only_a_matching_sha256_signature() -> None:
    text = '{"code":"10000","msg":"Success"}'
    good = by_hand_signature(text, ALIPAY_PRIVATE)
    assert verify_rsa2(text, good, ALIPAY_PUBLIC)
    assert not verify_rsa2(text + " ", good, ALIPAY_PUBLIC)
    assert not verify_rsa2(text, good, APP_PUBLIC)  # another key
    assert not verify_rsa2(text, by_hand_signature(text, ALIPAY_PRIVATE, "sha1"), ALIPAY_PUBLIC)


@pytest.mark.parametrize("sign", ["", "   ", "not base64!", "é", "QUJD" * 400])
def test_verify_fails_closed_on_a_malformed_signature(sign: str) -> None:
    assert not verify_rsa2("content", sign, ALIPAY_PUBLIC)


def test_verify_reads_a_space_as_plus() -> None:
    # The first of these texts whose signature holds a '+' (one in a few dozen has none).
    text, good = next(
        (t, s)
        for t in (f"text {n}" for n in range(100))
        if "+" in (s := by_hand_signature(t, ALIPAY_PRIVATE))
    )
    assert verify_rsa2(text, good.replace("+", " "), ALIPAY_PUBLIC)
    assert not verify_rsa2(text, good.replace("+", "/"), ALIPAY_PUBLIC)


def test_verify_fails_closed_on_a_bad_key_or_content() -> None:
    good = by_hand_signature("x", ALIPAY_PRIVATE)
    assert not verify_rsa2("x", good, "not a key")
    assert not verify_rsa2("x", good, b"")
    assert not verify_rsa2("\ud800", good, ALIPAY_PUBLIC)


def test_signing_needs_a_usable_key_and_never_shows_it() -> None:
    with pytest.raises(SigningError, match="private key"):
        sign_rsa2(PARAMS, b"")
    with pytest.raises(SigningError) as info:
        sign_rsa2(PARAMS, "MIIBroken")
    assert "MIIBroken" not in str(info.value)


def test_signing_refuses_text_utf8_cannot_write() -> None:
    with pytest.raises(SigningError, match="remark"):
        sign_rsa2({"remark": "\udc80"}, APP_PRIVATE)


_KEYS = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=12)


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(_KEYS, st.text(max_size=40), max_size=12))
def test_any_text_parameters_round_trip_sign_and_verify(params: dict[str, str]) -> None:
    signature = sign_rsa2(params, APP_PRIVATE)
    assert verify_rsa2(signing_string(params), signature, APP_PUBLIC)
    assert signature == by_hand_signature(signing_string(params), APP_PRIVATE)
