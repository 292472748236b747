"""Alipay's notification of a coupon refund: checking its signature and reading it.

A red-envelope refund that succeeded (in full or in part) is notified by a form POST
to the `notify_url` of the refund call, with `notify_type=fund_stdtrustee_refund.success`
and `notify_id`, `notify_time` (`yyyy-MM-dd HH:mm:ss`, Beijing), `auth_no`,
`out_request_no`, `operation_id`, `amount`, `status`, `gmt_trans`, `sign` and
`sign_type=RSA2`, and possibly more (`out_order_no`, `operation_type`, ...). The
receiver answers exactly `success` once it has recorded it; Alipay repeats it
otherwise.

`verify_notification` checks the signature over every received parameter except
`sign` and `sign_type`, empty values kept, sorted, `k=v&...` (the values as decoded
once from the form body), SHA256withRSA with Alipay's public key for the app. It
fails closed: a `sign_type` other than `RSA2` or anything it cannot check is False.

`parse_coupon_notification` reads the fields and raises `NotifyFormatError` naming
the first field that is missing or malformed; nothing else is raised. It does not
check the signature: verify first.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from worker.domain.errors import NotifyFormatError
from worker.mapi.amounts import parse_reported_amount
from worker.mapi.notify import is_valid_notify_id
from worker.openapi.signing import SIGN_TYPE, notification_signing_string, verify_rsa2

__all__ = [
    "COUPON_NOTIFY_TYPE",
    "NOTIFY_ANSWER",
    "CouponNotification",
    "parse_coupon_notification",
    "verify_notification",
]

COUPON_NOTIFY_TYPE = "fund_stdtrustee_refund.success"
# What the receiver answers once the notification is recorded: exactly this body.
NOTIFY_ANSWER = "success"

_TIMESTAMP = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}", re.ASCII)
_ID = re.compile(r"[A-Za-z0-9]{1,64}", re.ASCII)
_REQUEST_NO = re.compile(r"[A-Za-z0-9_]{1,64}", re.ASCII)
_STATUS = re.compile(r"[A-Z][A-Z_]{0,31}", re.ASCII)


@dataclass(frozen=True)
class CouponNotification:
    """A parsed coupon refund notification (its signature is checked separately)."""

    notify_id: str
    notify_time: str
    auth_no: str
    out_request_no: str
    operation_id: str
    amount: Decimal
    status: str
    gmt_trans: str | None

    @property
    def succeeded(self) -> bool:
        return self.status == "SUCCESS"


def verify_notification(form: Mapping[str, str], public_key_pem: str | bytes) -> bool:
    """Whether `form` carries Alipay's valid RSA2 signature (rules in the module docstring)."""
    if not isinstance(form, Mapping):
        return False
    sign, sign_type = form.get("sign"), form.get("sign_type")
    if not isinstance(sign, str) or not sign or sign_type != SIGN_TYPE:
        return False
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in form.items()):
        return False
    return verify_rsa2(notification_signing_string(form), sign, public_key_pem)


def parse_coupon_notification(form: Mapping[str, str]) -> CouponNotification:
    """The fields of a coupon refund notification; NotifyFormatError names a bad field."""
    notify_type = _required(form, "notify_type")
    if notify_type != COUPON_NOTIFY_TYPE:
        raise NotifyFormatError(f"notify_type {notify_type[:60]!r} is not {COUPON_NOTIFY_TYPE}")
    notify_id = _required(form, "notify_id")
    if not is_valid_notify_id(notify_id):
        raise NotifyFormatError("notify_id is not 1-128 printable ASCII characters")
    notify_time = _timestamp(form, "notify_time")
    auth_no = _matching(form, "auth_no", _ID, "1-64 letters or digits")
    out_request_no = _matching(form, "out_request_no", _REQUEST_NO, "1-64 letters, digits or _")
    operation_id = _matching(form, "operation_id", _ID, "1-64 letters or digits")
    amount_text = _required(form, "amount")
    amount = parse_reported_amount(amount_text)
    if amount is None or amount <= 0:
        raise NotifyFormatError(f"amount {amount_text[:32]!r} is not a positive amount")
    status = _matching(form, "status", _STATUS, "an upper-case status")
    return CouponNotification(
        notify_id=notify_id,
        notify_time=notify_time,
        auth_no=auth_no,
        out_request_no=out_request_no,
        operation_id=operation_id,
        amount=amount,
        status=status,
        gmt_trans=_timestamp(form, "gmt_trans") if _present(form, "gmt_trans") else None,
    )


def _required(form: Mapping[str, str], name: str) -> str:
    value = form.get(name)
    if value is None:
        raise NotifyFormatError(f"{name} is missing")
    if not isinstance(value, str):
        raise NotifyFormatError(f"{name} is not text")
    if not value.strip():
        raise NotifyFormatError(f"{name} is empty")
    return value.strip()


def _matching(form: Mapping[str, str], name: str, pattern: re.Pattern[str], what: str) -> str:
    value = _required(form, name)
    if not pattern.fullmatch(value):
        raise NotifyFormatError(f"{name} {value[:70]!r} is not {what}")
    return value


def _present(form: Mapping[str, str], name: str) -> bool:
    """Whether an optional field was sent with a value (a non-text value counts, to be refused)."""
    value = form.get(name)
    if value is None:
        return False
    return not isinstance(value, str) or bool(value.strip())


def _timestamp(form: Mapping[str, str], name: str) -> str:
    value = _required(form, name)
    if not _TIMESTAMP.fullmatch(value):
        raise NotifyFormatError(f"{name} {value[:30]!r} is not yyyy-MM-dd HH:mm:ss")
    return value
