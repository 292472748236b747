"""The OpenAPI gateway's checks of one call, as a pure function: `check_call`.

A call is a form `POST` (UTF-8; common parameters may also come in the URL's
query string, as the official SDK sends them). In order, the first problem
found is the answer, an `error_response` (`GatewayError`):

* a parameter given twice (in the body, or in the URL and the body with two
  values), a body that is not UTF-8 or not a form: `40002` `isv.invalid-parameter`;
* missing `app_id`, `method`, `charset`, `sign_type`, `sign`, `timestamp`,
  `version`: `40001` `isv.missing-app-id`, `isv.missing-method`,
  `isv.missing-charset`, `isv.missing-signature-type`, `isv.missing-signature`,
  `isv.missing-timestamp`, `isv.missing-version`;
* `charset` other than `utf-8`: `40002` `isv.invalid-charset`; `format` given and
  not `JSON`: `isv.invalid-format`; `sign_type` not `RSA2`:
  `isv.invalid-signature-type`; a `timestamp` that is not `yyyy-MM-dd HH:mm:ss`:
  `isv.invalid-timestamp`; `version` not `1.0`: `isv.invalid-version`;
* an `app_id` no partner has: `40002` `isv.invalid-app-id` (answered with an
  empty `sign`: there is no app to sign for);
* a signature that does not verify with the app's public key, over every
  parameter but `sign` (`sign_type` included, empty values dropped, sorted;
  `worker.openapi.signing.signing_string`): `40002` `isv.invalid-signature`;
* a `method` the gateway does not have: `40002` `isv.invalid-method`;
* no `biz_content`: `40001` `isv.missing-biz-content`; one that is not a JSON
  object: `40002` `isv.invalid-parameter`;
* a required field of the method missing: `40001` `isv.missing-parameter`; a
  field of the wrong form (amount, numbers, notify_url): `40002`
  `isv.invalid-parameter`; `sub_msg` names the field.

Fields (values may be JSON strings or numbers): `alipay.trade.refund`
`trade_no` and/or `out_trade_no`, `out_request_no`, `refund_amount`;
`alipay.trade.fastpay.refund.query` `trade_no` and/or `out_trade_no`,
`out_request_no`; `alipay.fund.coupon.order.refund` `auth_no`, `out_request_no`,
`amount` (`remark` optional; `notify_url`, a common parameter, optional: no
notification without it); `alipay.fund.coupon.operation.query` `auth_no`,
`out_request_no`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Final
from urllib.parse import parse_qs, urlsplit

from worker.domain.errors import DetailDataError
from worker.mapi import is_valid_trade_no, parse_amount
from worker.mapi.dates import REFUND_DATE_FORMAT
from worker.openapi import (
    COUPON_QUERY,
    COUPON_REFUND,
    TRADE_REFUND,
    TRADE_REFUND_QUERY,
    signing_string,
    verify_rsa2,
)

__all__ = ["METHODS", "GatewayError", "OpenApiCall", "check_call"]

METHODS: Final = (TRADE_REFUND, TRADE_REFUND_QUERY, COUPON_REFUND, COUPON_QUERY)
MISSING: Final = ("40001", "Missing Required Arguments")
INVALID: Final = ("40002", "Invalid Arguments")
_COMMON: Final = (
    ("app_id", "isv.missing-app-id"),
    ("method", "isv.missing-method"),
    ("charset", "isv.missing-charset"),
    ("sign_type", "isv.missing-signature-type"),
    ("sign", "isv.missing-signature"),
    ("timestamp", "isv.missing-timestamp"),
    ("version", "isv.missing-version"),
)
_REQUEST_NO = re.compile(r"[A-Za-z0-9_]{1,64}", re.ASCII)
_OUT_TRADE_NO = re.compile(r"[\x21-\x7e]{1,64}", re.ASCII)
_AUTH_NO = re.compile(r"[A-Za-z0-9]{1,64}", re.ASCII)
_FORM = "application/x-www-form-urlencoded"


@dataclass(frozen=True)
class GatewayError:
    """An `error_response`: code, msg, sub_code, sub_msg; `signed` False for an unknown app."""

    code: str
    msg: str
    sub_code: str
    sub_msg: str
    app_id: str | None = None
    method: str | None = None
    signed: bool = True


@dataclass(frozen=True)
class OpenApiCall:
    """A call that passed every check: the app, the method, its fields, the notify URL."""

    app_id: str
    method: str
    fields: Mapping[str, str]
    notify_url: str | None
    amount: Decimal | None


def check_call(
    query: bytes, body: bytes, content_type: str, apps: Mapping[str, bytes]
) -> OpenApiCall | GatewayError:
    """Check one call against the apps served (`app_id` -> the app's public key PEM)."""
    params = _params(query, body, content_type)
    if isinstance(params, GatewayError):
        return params
    app_id, method = params.get("app_id") or None, params.get("method") or None

    def missing(sub_code: str, what: str) -> GatewayError:
        return GatewayError(*MISSING, sub_code, f"缺少{what}参数", app_id, method)

    def invalid(sub_code: str, what: str, *, signed: bool = True) -> GatewayError:
        return GatewayError(*INVALID, sub_code, what, app_id, method, signed)

    for name, sub_code in _COMMON:
        if not params.get(name):
            return missing(sub_code, name)
    if params["charset"].lower() != "utf-8":
        return invalid("isv.invalid-charset", "charset must be utf-8")
    if params.get("format", "JSON").upper() != "JSON":
        return invalid("isv.invalid-format", "format must be JSON")
    if params["sign_type"] != "RSA2":
        return invalid("isv.invalid-signature-type", "sign_type must be RSA2")
    try:
        datetime.strptime(params["timestamp"], REFUND_DATE_FORMAT)
    except ValueError:
        return invalid("isv.invalid-timestamp", "timestamp is not yyyy-MM-dd HH:mm:ss")
    if params["version"] != "1.0":
        return invalid("isv.invalid-version", "version must be 1.0")
    key = apps.get(params["app_id"])
    if key is None:
        return invalid("isv.invalid-app-id", "无效的AppID参数", signed=False)
    if not verify_rsa2(signing_string(params), params["sign"], key):
        return invalid("isv.invalid-signature", "验签出错")
    if params["method"] not in METHODS:
        return invalid("isv.invalid-method", "不存在的方法名")
    if not params.get("biz_content"):
        return missing("isv.missing-biz-content", "biz_content")
    fields = _biz(params["biz_content"])
    if fields is None:
        return invalid("isv.invalid-parameter", "biz_content is not a JSON object")
    problem = _field_problem(params["method"], fields)
    if problem is not None:
        kind, what = problem
        if kind == "missing":
            return GatewayError(*MISSING, "isv.missing-parameter", what, app_id, method)
        return invalid("isv.invalid-parameter", what)
    notify_url = params.get("notify_url") or None
    if notify_url is not None and not _is_url(notify_url):
        return invalid("isv.invalid-parameter", "notify_url is not an absolute http(s) URL")
    amount_field = {TRADE_REFUND: "refund_amount", COUPON_REFUND: "amount"}.get(params["method"])
    amount = parse_amount(fields[amount_field]) if amount_field else None
    return OpenApiCall(params["app_id"], params["method"], fields, notify_url, amount)


def _params(query: bytes, body: bytes, content_type: str) -> dict[str, str] | GatewayError:
    def bad(what: str) -> GatewayError:
        return GatewayError(*INVALID, "isv.invalid-parameter", what)

    media = content_type.split(";", 1)[0].strip().lower()
    if body and media and media != _FORM:
        return bad(f"the body must be {_FORM}")
    params: dict[str, str] = {}
    for source in (query, body):
        try:
            text = source.decode("utf-8")
            parsed = parse_qs(text, keep_blank_values=True, errors="strict")
        except (UnicodeDecodeError, ValueError):
            return bad("the request is not a UTF-8 form")
        for name, values in parsed.items():
            if len(values) > 1 or params.get(name, values[0]) != values[0]:
                return bad(f"parameter {name[:40]} is given more than once")
            params[name] = values[0]
    return params


def _biz(text: str) -> dict[str, str] | None:
    try:
        value = json.loads(text, parse_float=str, parse_int=str)
    except (ValueError, RecursionError):
        return None
    if not isinstance(value, dict):
        return None
    return {k: v for k, v in value.items() if isinstance(v, str)}


def _field_problem(method: str, fields: Mapping[str, str]) -> tuple[str, str] | None:
    """("missing" | "invalid", sentence naming the field) for the first bad field, or None."""
    if method in (TRADE_REFUND, TRADE_REFUND_QUERY):
        if not fields.get("trade_no") and not fields.get("out_trade_no"):
            return "missing", "trade_no or out_trade_no is required"
        if fields.get("trade_no") and not is_valid_trade_no(fields["trade_no"]):
            return "invalid", "trade_no is not 16-64 digits"
        if fields.get("out_trade_no") and not _OUT_TRADE_NO.fullmatch(fields["out_trade_no"]):
            return "invalid", "out_trade_no is not 1-64 printable characters"
    else:
        if not fields.get("auth_no"):
            return "missing", "auth_no is required"
        if not _AUTH_NO.fullmatch(fields["auth_no"]):
            return "invalid", "auth_no is not 1-64 letters or digits"
    if not fields.get("out_request_no"):
        return "missing", "out_request_no is required"
    if not _REQUEST_NO.fullmatch(fields["out_request_no"]):
        return "invalid", "out_request_no is not 1-64 letters, digits or _"
    amount_field = {TRADE_REFUND: "refund_amount", COUPON_REFUND: "amount"}.get(method)
    if amount_field is not None:
        if not fields.get(amount_field):
            return "missing", f"{amount_field} is required"
        try:
            parse_amount(fields[amount_field])
        except DetailDataError:
            return "invalid", f"{amount_field} is not an amount of yuan (> 0, two decimals)"
    return None


def _is_url(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc) and len(url) <= 256
