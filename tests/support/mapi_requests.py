"""Signed mapi requests for the sandbox tests: refunds, re-signing, the refund query.

`refund_params` builds a signed refund request with `worker.mapi` (one item
of a fresh trade by default, `trade_no` makes unique trade numbers);
`resign` signs a request again after a test changed it; `submit` posts it
the way the worker does. `query_params` / `query` / `query_answer` /
`query_items` sign, send and read the refund query `refund_fastpay_query`
the way public integrations do. Moved out of `tests.support.sandbox`, which
re-exports every name.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import requests

from worker.mapi import (
    SERVICE_NOPWD,
    Merchant,
    RefundItem,
    build_refund_request,
    decode_form,
    encode_form,
    gateway_url_with_charset,
    make_batch_no,
    sign,
)

if TYPE_CHECKING:
    from tests.support.sandbox import RunningSandbox

__all__ = [
    "PARTNER",
    "QUERY_SERVICE",
    "form_body",
    "form_headers",
    "query",
    "query_answer",
    "query_items",
    "query_params",
    "refund_params",
    "resign",
    "submit",
    "trade_no",
]

PARTNER = "2088000000000001"
QUERY_SERVICE = "refund_fastpay_query"


_serials = iter(range(1, 10**9))
_serial_lock = threading.Lock()
_RUN = secrets.randbelow(10**6)


def trade_no(index: int | None = None) -> str:
    """A valid 28-digit Alipay trade number, unique within the test run unless `index` given."""
    if index is None:
        with _serial_lock:
            index = next(_serials)
    return f"2016{_RUN:06d}{index:018d}"


def refund_params(
    *,
    md5_key: str | None = None,
    private_key: bytes | None = None,
    sign_type: str = "MD5",
    charset: str = "utf-8",
    items: Sequence[RefundItem] | None = None,
    notify_url: str | None = None,
    now: datetime | None = None,
    serial: int | str | None = None,
    service: str = SERVICE_NOPWD,
    partner: str = PARTNER,
    **extra: Any,
) -> dict[str, str]:
    """A signed refund request built by `worker.mapi` (one item of a fresh trade by default)."""
    when = now or datetime.now(UTC)
    if serial is None:
        with _serial_lock:
            serial = f"{_RUN:06d}{next(_serials):09d}"
    merchant = Merchant(
        partner=partner,
        charset=charset,
        sign_type=sign_type,
        md5_key=md5_key,
        private_key_pem=private_key,
        notify_url=notify_url,
    )
    return build_refund_request(
        merchant,
        batch_no=make_batch_no(when, serial),
        items=list(items)
        if items is not None
        else [RefundItem(trade_no(), Decimal("1.00"), "协商退款")],
        now=when,
        service=service,
        **extra,
    )


def resign(
    params: Mapping[str, str],
    *,
    md5_key: str | None = None,
    private_key: bytes | None = None,
    charset: str | None = None,
) -> dict[str, str]:
    """`params` with a fresh signature over its current values (after a test changed some).

    A missing or unknown `sign_type` is left as it is; the signature is then MD5
    (or RSA when only `private_key` is given), so only the sign type is wrong.
    """
    out = {k: v for k, v in params.items() if k != "sign"}
    sign_type = out.get("sign_type")
    if sign_type not in ("MD5", "RSA"):
        sign_type = "RSA" if private_key and not md5_key else "MD5"
    out["sign"] = sign(
        out,
        sign_type=sign_type,
        charset=charset or out.get("_input_charset") or "utf-8",
        md5_key=md5_key,
        private_key_pem=private_key,
    )
    return out


def submit(
    sandbox: RunningSandbox,
    params: Mapping[str, str],
    *,
    charset: str | None = None,
    timeout: float = 10.0,
    session: requests.Session | None = None,
) -> requests.Response:
    """POST a refund request the way the worker does: form body, charset in the URL."""
    charset = charset or params.get("_input_charset") or "utf-8"
    return (session or requests).post(
        gateway_url_with_charset(sandbox.gateway_url, charset),
        data=encode_form(params, charset),
        headers=form_headers(charset),
        timeout=timeout,
    )


def query_params(
    *,
    md5_key: str | None = None,
    private_key: bytes | None = None,
    batch_no: str | None = None,
    trade_no: str | None = None,
    sign_type: str = "MD5",
    charset: str = "utf-8",
    partner: str = PARTNER,
) -> dict[str, str]:
    """A signed `refund_fastpay_query` request for a batch_no and/or a trade_no."""
    params = {"service": QUERY_SERVICE, "partner": partner, "_input_charset": charset}
    if batch_no is not None:
        params["batch_no"] = batch_no
    if trade_no is not None:
        params["trade_no"] = trade_no
    params["sign"] = sign(
        params,
        sign_type=sign_type,
        charset=charset,
        md5_key=md5_key,
        private_key_pem=private_key,
    )
    params["sign_type"] = sign_type
    return params


def query(
    sandbox: RunningSandbox,
    params: Mapping[str, str],
    *,
    method: str = "POST",
    timeout: float = 10.0,
) -> requests.Response:
    """Send a query: POST form with the charset in the URL, or GET with everything in the URL."""
    charset = params.get("_input_charset") or "utf-8"
    if method == "GET":
        url = f"{sandbox.gateway_url}?{encode_form(params, charset).decode('ascii')}"
        return requests.get(url, timeout=timeout)
    return requests.post(
        gateway_url_with_charset(sandbox.gateway_url, charset),
        data=encode_form(params, charset),
        headers=form_headers(charset),
        timeout=timeout,
    )


def query_answer(response: requests.Response, charset: str = "utf-8") -> dict[str, str]:
    """The answer's fields, split on `&` and `=` and URL-decoded (as `parse_str` reads it)."""
    return decode_form(response.content, charset)


def query_items(answer: Mapping[str, str]) -> list[tuple[str, str, str, str]]:
    """(batch_no, trade_no, amount, code) of each entry; extra `^` fields after the code dropped."""
    entries = [entry for entry in answer.get("result_details", "").split("#") if entry]
    return [(b, t, a, c) for b, t, a, c, *_ in (entry.split("^") for entry in entries)]


def form_headers(charset: str) -> dict[str, str]:
    return {"Content-Type": f"application/x-www-form-urlencoded; charset={charset}"}


def form_body(params: Mapping[str, str], charset: str) -> bytes:
    return encode_form(params, charset)
