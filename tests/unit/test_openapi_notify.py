"""The coupon refund notification: signature over the received form, fields, clear errors."""

from __future__ import annotations

from decimal import Decimal
from urllib.parse import parse_qsl, urlencode

import pytest

from tests.support.openapi import alipay_keys, app_keys, by_hand_signature
from worker.domain.errors import NotifyFormatError
from worker.openapi import (
    COUPON_NOTIFY_TYPE,
    NOTIFY_ANSWER,
    CouponNotification,
    parse_coupon_notification,
    verify_notification,
)

ALIPAY_PRIVATE, ALIPAY_PUBLIC = alipay_keys()

FIELDS = {
    "notify_type": "fund_stdtrustee_refund.success",
    "notify_id": "91722adff935e8cfa58b3aabf4dead6ibe",
    "notify_time": "2017-02-16 21:46:15",
    "auth_no": "2018081710002001860231318890",
    "out_order_no": "",
    "operation_id": "20180817000000123",
    "out_request_no": "refund20171228254",
    "operation_type": "REFUND",
    "amount": "0.01",
    "status": "SUCCESS",
    "gmt_trans": "2017-02-16 21:46:14",
    "remark": "红包 退款&a=b",
}


def signed(fields: dict[str, str]) -> dict[str, str]:
    """The form as Alipay sends it: signed over the sorted fields, empty ones included."""
    text = "&".join(f"{k}={v}" for k, v in sorted(fields.items()))
    return {**fields, "sign_type": "RSA2", "sign": by_hand_signature(text, ALIPAY_PRIVATE)}


def test_a_genuine_notification_verifies() -> None:
    assert verify_notification(signed(FIELDS), ALIPAY_PUBLIC)


def test_verification_after_one_url_decoding_of_the_body() -> None:
    body = urlencode(signed(FIELDS))
    form = dict(parse_qsl(body, keep_blank_values=True))
    assert verify_notification(form, ALIPAY_PUBLIC)


def test_an_empty_value_is_part_of_the_signed_string() -> None:
    form = signed(FIELDS)
    del form["out_order_no"]
    assert not verify_notification(form, ALIPAY_PUBLIC)


@pytest.mark.parametrize(
    "change",
    [
        {"amount": "1.00"},
        {"status": "CLOSED"},
        {"extra": "x"},
        {"sign_type": "RSA"},
        {"sign": ""},
    ],
)
def test_a_changed_notification_does_not_verify(change: dict[str, str]) -> None:
    assert not verify_notification({**signed(FIELDS), **change}, ALIPAY_PUBLIC)


def test_a_missing_sign_or_another_key_does_not_verify() -> None:
    form = signed(FIELDS)
    assert not verify_notification({k: v for k, v in form.items() if k != "sign"}, ALIPAY_PUBLIC)
    assert not verify_notification(form, app_keys()[1])


def test_sign_type_is_not_signed() -> None:
    text = "&".join(f"{k}={v}" for k, v in sorted({**FIELDS, "sign_type": "RSA2"}.items()))
    form = {**FIELDS, "sign_type": "RSA2", "sign": by_hand_signature(text, ALIPAY_PRIVATE)}
    assert not verify_notification(form, ALIPAY_PUBLIC)


def test_parse_a_coupon_notification() -> None:
    notification = parse_coupon_notification(signed(FIELDS))
    assert notification == CouponNotification(
        notify_id="91722adff935e8cfa58b3aabf4dead6ibe",
        notify_time="2017-02-16 21:46:15",
        auth_no="2018081710002001860231318890",
        out_request_no="refund20171228254",
        operation_id="20180817000000123",
        amount=Decimal("0.01"),
        status="SUCCESS",
        gmt_trans="2017-02-16 21:46:14",
    )
    assert notification.succeeded
    assert FIELDS["notify_type"] == COUPON_NOTIFY_TYPE and NOTIFY_ANSWER == "success"


def test_gmt_trans_may_be_absent() -> None:
    fields = {k: v for k, v in FIELDS.items() if k != "gmt_trans"}
    assert parse_coupon_notification(fields).gmt_trans is None
    assert parse_coupon_notification({**FIELDS, "gmt_trans": ""}).gmt_trans is None


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"notify_type": "batch_refund_notify"}, "notify_type"),
        ({"notify_id": "with space"}, "notify_id"),
        ({"notify_time": "2017/02/16"}, "notify_time"),
        ({"auth_no": "null-1"}, "auth_no"),
        ({"out_request_no": "a-b"}, "out_request_no"),
        ({"operation_id": ""}, "operation_id"),
        ({"amount": "-1"}, "amount"),
        ({"amount": "0"}, "amount"),
        ({"amount": "0.001"}, "amount"),
        ({"status": "success"}, "status"),
        ({"gmt_trans": "yesterday"}, "gmt_trans"),
    ],
)
def test_a_bad_field_is_named(change: dict[str, str], field: str) -> None:
    with pytest.raises(NotifyFormatError, match=field):
        parse_coupon_notification({**FIELDS, **change})


@pytest.mark.parametrize("field", ["notify_type", "notify_id", "auth_no", "amount", "status"])
def test_a_missing_field_is_named(field: str) -> None:
    with pytest.raises(NotifyFormatError, match=f"{field} is missing"):
        parse_coupon_notification({k: v for k, v in FIELDS.items() if k != field})
