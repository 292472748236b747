"""Building signed OpenAPI requests: common parameters, `biz_content`, `out_request_no`.

One request carries one refund: a form POST to the gateway with the common
parameters

    app_id, method, format=JSON, charset=utf-8, sign_type=RSA2, timestamp, version=1.0,
    notify_url (only where the service has one), biz_content, sign

`timestamp` is `yyyy-MM-dd HH:mm:ss` in Beijing time at `now` (an aware datetime the
caller's clock gives). `biz_content` is JSON written the way the official SDK writes
it: sorted keys, no spaces, non-ASCII kept (`biz_content_json`). Every value in it is
a string, amounts included (`5.00`, two decimals).

Checked before signing: the app id is 8 to 32 digits, the method is a dotted lower-case
name, a notify URL is an absolute http(s) URL of at most 256 ASCII characters with no
query or fragment, `out_request_no` is 1-64 letters, digits or `_`, Alipay's trade
number is 16-64 digits, amounts are > 0 with at most two decimals. Bad input raises
ConfigError (the app or notify URL) or ProtocolError (a field), naming it.

Free text is made safe before it is sent: `refund_reason` as a mapi reason in UTF-8
(at most 256 bytes; see `worker/mapi/detail.py` `sanitize_reason`), the coupon
`remark` the same way and then cut to 100 GBK bytes, that is at most 100 letters or
50 Chinese characters. The result is deterministic, so a retry sends the same
`biz_content`.

`out_request_no(refund_id)` derives the merchant's request number from the refund id
(see its docstring): the same id always gives the same number, so a retry can never
get a new one.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from worker.domain.errors import ConfigError, DetailDataError, ProtocolError
from worker.mapi.amounts import check_refund_amount, format_amount
from worker.mapi.dates import REFUND_DATE_FORMAT, beijing
from worker.mapi.detail import is_valid_trade_no, sanitize_reason
from worker.mapi.request import notify_url_problem
from worker.openapi.signing import SIGN_TYPE, sign_rsa2

__all__ = [
    "COUPON_QUERY",
    "COUPON_REFUND",
    "GATEWAY_URL",
    "MAX_REMARK_UNITS",
    "TRADE_REFUND",
    "TRADE_REFUND_QUERY",
    "OpenApiApp",
    "biz_content_json",
    "build_request",
    "check_app",
    "coupon_query_request",
    "coupon_refund_request",
    "out_request_no",
    "remark_text",
    "trade_refund_query_request",
    "trade_refund_request",
]

GATEWAY_URL = "https://openapi.alipay.com/gateway.do"
TRADE_REFUND = "alipay.trade.refund"
TRADE_REFUND_QUERY = "alipay.trade.fastpay.refund.query"
COUPON_REFUND = "alipay.fund.coupon.order.refund"
COUPON_QUERY = "alipay.fund.coupon.operation.query"
MAX_NOTIFY_URL_LENGTH = 256
MAX_OUT_REQUEST_NO = 64
# A remark holds at most 100 letters or 50 Chinese characters: 100 GBK bytes.
MAX_REMARK_UNITS = 100

_APP_ID = re.compile(r"[0-9]{8,32}", re.ASCII)
_METHOD = re.compile(r"[a-z][a-z0-9]*(?:\.[a-z0-9]+)+", re.ASCII)
_REQUEST_NO = re.compile(r"[A-Za-z0-9_]{1,64}", re.ASCII)
_OUT_TRADE_NO = re.compile(r"[\x21-\x7e]{1,64}", re.ASCII)
_AUTH_NO = re.compile(r"[A-Za-z0-9]{1,64}", re.ASCII)
_NOT_ALLOWED = re.compile(r"[^A-Za-z0-9_]", re.ASCII)
# What a derived (mapped or shortened) out_request_no ends with: `_x` + 24 hex digits.
_HASH_DIGITS = 24
_DERIVED = re.compile(rf"_x[0-9a-f]{{{_HASH_DIGITS}}}\Z", re.ASCII)


@dataclass(frozen=True)
class OpenApiApp:
    """An OpenAPI application: its id, its private key, Alipay's public key for it.

    Its repr never shows a key.
    """

    app_id: str
    private_key_pem: str | bytes
    alipay_public_key_pem: str | bytes

    def __repr__(self) -> str:
        private = "<set>" if self.private_key_pem else "<unset>"
        public = "<set>" if self.alipay_public_key_pem else "<unset>"
        return (
            f"OpenApiApp(app_id={self.app_id!r}, private_key_pem={private},"
            f" alipay_public_key_pem={public})"
        )

    __str__ = __repr__


def check_app(app: OpenApiApp) -> None:
    """Raise ConfigError naming the first setting of `app` the gateway would refuse."""
    if not isinstance(app.app_id, str) or not _APP_ID.fullmatch(app.app_id):
        raise ConfigError("app_id must be 8 to 32 digits")
    if not app.private_key_pem:
        raise ConfigError(f"app {app.app_id}: the application private key is not set")
    if not app.alipay_public_key_pem:
        raise ConfigError(f"app {app.app_id}: Alipay's public key is not set")


def biz_content_json(fields: Mapping[str, str]) -> str:
    """`biz_content` as the official SDK writes it: sorted keys, no spaces, non-ASCII kept."""
    for key, value in fields.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise ProtocolError(f"biz_content field {str(key)[:40]!r} must be text")
    return json.dumps(dict(fields), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def build_request(
    app: OpenApiApp,
    *,
    method: str,
    biz: Mapping[str, str],
    now: datetime,
    notify_url: str | None,
) -> dict[str, str]:
    """The full signed form of one OpenAPI call sent at `now` (rules in the module docstring).

    Raises ConfigError (app, notify URL), ProtocolError (method, fields), ValueError
    (a naive `now`) or SigningError (an unusable key).
    """
    check_app(app)
    if not isinstance(method, str) or not _METHOD.fullmatch(method):
        raise ProtocolError(f"method {str(method)[:60]!r} is not a dotted lower-case API name")
    params: dict[str, str] = {
        "app_id": app.app_id,
        "method": method,
        "format": "JSON",
        "charset": "utf-8",
        "sign_type": SIGN_TYPE,
        "timestamp": beijing(now).strftime(REFUND_DATE_FORMAT),
        "version": "1.0",
    }
    if notify_url is not None:
        problem = notify_url_problem(notify_url, MAX_NOTIFY_URL_LENGTH)
        if problem:
            raise ConfigError(f"notify_url {problem}")
        params["notify_url"] = notify_url
    params["biz_content"] = biz_content_json(biz)
    params["sign"] = sign_rsa2(params, app.private_key_pem)
    return params


def trade_refund_request(
    app: OpenApiApp,
    *,
    out_request_no: str,
    amount: Decimal,
    now: datetime,
    trade_no: str | None = None,
    out_trade_no: str | None = None,
    reason: str = "",
) -> dict[str, str]:
    """`alipay.trade.refund` of `amount` yuan on one trade (Alipay's or the merchant's number)."""
    biz = _trade_keys(trade_no, out_trade_no)
    biz["out_request_no"] = _checked_request_no(out_request_no)
    biz["refund_amount"] = _amount(amount)
    clean = sanitize_reason(reason, "utf-8") if reason else ""
    if clean.strip():
        biz["refund_reason"] = clean
    return build_request(app, method=TRADE_REFUND, biz=biz, now=now, notify_url=None)


def trade_refund_query_request(
    app: OpenApiApp,
    *,
    out_request_no: str,
    now: datetime,
    trade_no: str | None = None,
    out_trade_no: str | None = None,
) -> dict[str, str]:
    """`alipay.trade.fastpay.refund.query` of one refund request of one trade."""
    biz = _trade_keys(trade_no, out_trade_no)
    biz["out_request_no"] = _checked_request_no(out_request_no)
    return build_request(app, method=TRADE_REFUND_QUERY, biz=biz, now=now, notify_url=None)


def coupon_refund_request(
    app: OpenApiApp,
    *,
    auth_no: str,
    out_request_no: str,
    amount: Decimal,
    now: datetime,
    notify_url: str | None,
    remark: str = "",
) -> dict[str, str]:
    """`alipay.fund.coupon.order.refund`: give back `amount` of a red envelope's fund order.

    The success notification goes to `notify_url` (`worker.openapi.notify`).
    """
    biz = {
        "auth_no": _checked_auth_no(auth_no),
        "out_request_no": _checked_request_no(out_request_no),
        "amount": _amount(amount),
    }
    clean = remark_text(remark)
    if clean.strip():
        biz["remark"] = clean
    return build_request(app, method=COUPON_REFUND, biz=biz, now=now, notify_url=notify_url)


def coupon_query_request(
    app: OpenApiApp, *, auth_no: str, out_request_no: str, now: datetime
) -> dict[str, str]:
    """`alipay.fund.coupon.operation.query` of one operation (a refund) of a fund order."""
    biz = {
        "auth_no": _checked_auth_no(auth_no),
        "out_request_no": _checked_request_no(out_request_no),
    }
    return build_request(app, method=COUPON_QUERY, biz=biz, now=now, notify_url=None)


def remark_text(text: str) -> str:
    """Free text made a valid coupon `remark`: a safe mapi reason cut to 100 GBK bytes."""
    clean = sanitize_reason(text, "gbk")
    out: list[str] = []
    size = 0
    for ch in clean:
        width = len(ch.encode("gbk"))
        if size + width > MAX_REMARK_UNITS:
            break
        out.append(ch)
        size += width
    return "".join(out)


def out_request_no(refund_id: str) -> str:
    """The `out_request_no` of a refund: stable, 1-64 characters of `[A-Za-z0-9_]`.

    An id made only of letters, digits and `_`, at most 64 characters long and not
    ending like a derived number, is used as it is. Any other id is derived: its
    characters outside the alphabet become `_`, it is cut to 38 characters, and
    `_x` plus the first 24 hex digits of the SHA-256 of the whole id are appended.
    A number used as it is never ends with `_x` and 24 hex digits and a derived one
    always does, so two refund ids share a number only if their hashes collide in
    96 bits.
    """
    if not isinstance(refund_id, str) or not refund_id:
        raise ProtocolError("refund_id must be a non-empty string")
    if _REQUEST_NO.fullmatch(refund_id) and not _DERIVED.search(refund_id):
        return refund_id
    digest = hashlib.sha256(refund_id.encode("utf-8", "surrogatepass")).hexdigest()
    suffix = f"_x{digest[:_HASH_DIGITS]}"
    prefix = _NOT_ALLOWED.sub("_", refund_id)[: MAX_OUT_REQUEST_NO - len(suffix)]
    return prefix + suffix


def _trade_keys(trade_no: str | None, out_trade_no: str | None) -> dict[str, str]:
    if not trade_no and not out_trade_no:
        raise ProtocolError("a trade refund needs trade_no or out_trade_no")
    keys: dict[str, str] = {}
    if trade_no:
        if not is_valid_trade_no(trade_no):
            raise ProtocolError(f"trade_no {str(trade_no)[:70]!r} is not 16-64 digits")
        keys["trade_no"] = trade_no
    if out_trade_no:
        if not isinstance(out_trade_no, str) or not _OUT_TRADE_NO.fullmatch(out_trade_no):
            raise ProtocolError("out_trade_no must be 1-64 printable ASCII characters")
        keys["out_trade_no"] = out_trade_no
    return keys


def _checked_request_no(value: str) -> str:
    if not isinstance(value, str) or not _REQUEST_NO.fullmatch(value):
        raise ProtocolError(
            f"out_request_no {str(value)[:70]!r} is not 1-64 letters, digits or '_'"
            " (derive it with out_request_no(refund_id))"
        )
    return value


def _checked_auth_no(value: str) -> str:
    if not isinstance(value, str) or not _AUTH_NO.fullmatch(value):
        raise ProtocolError(f"auth_no {str(value)[:70]!r} is not 1-64 letters or digits")
    return value


def _amount(amount: Decimal) -> str:
    try:
        return format_amount(check_refund_amount(amount))
    except DetailDataError as exc:
        raise ProtocolError(f"refund amount: {exc}") from None
