"""Building the signed batch refund request.

`refund_fastpay_by_platform_nopwd` is a server-to-server form POST to
`<gateway>?_input_charset=<charset>`; the parameters (in the order of the
official table) are::

    service, partner, _input_charset, sign_type, sign, notify_url,
    dback_notify_url, batch_no, refund_date, batch_num, detail_data,
    use_freeze_amount (Y/N), return_type (xml)

The password variant `refund_fastpay_by_platform_pwd` (an HTML form the
operator's browser posts) takes the same batch fields plus `seller_user_id`
or `seller_email`, and has no dback_notify_url, use_freeze_amount or
return_type.

Checked before signing: the partner is 16 digits starting with 2088, the
charset is utf-8 or gbk, the sign type is MD5 or RSA, notify URLs are
http(s), at most 200 characters and carry no query string of their own, the
batch_no is well formed and dated on the Beijing day of `now` (the day of
`refund_date`), and every item passes the `detail_data` rules after its
reason was sanitized.

`notify_verify` is a plain GET to the gateway with `service`, `partner` and
`notify_id`; it is not signed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from worker.domain.errors import ConfigError, DetailDataError, NotifyFormatError, ProtocolError
from worker.mapi.charsets import codec_for
from worker.mapi.dates import batch_no_date, beijing_date, is_valid_batch_no, refund_date
from worker.mapi.detail import RefundItem, encode_detail_data, sanitize_reason
from worker.mapi.notify import is_valid_notify_id
from worker.mapi.signing import SIGN_TYPES, sign

SERVICE_NOPWD = "refund_fastpay_by_platform_nopwd"
SERVICE_PWD = "refund_fastpay_by_platform_pwd"
SERVICES = frozenset({SERVICE_NOPWD, SERVICE_PWD})
NOTIFY_VERIFY_SERVICE = "notify_verify"
MAX_NOTIFY_URL_LENGTH = 200

_PARTNER = re.compile(r"2088[0-9]{12}", re.ASCII)
_EMAIL = re.compile(r"[\x21-\x7e]{1,100}", re.ASCII)


@dataclass(frozen=True)
class Merchant:
    """The merchant's gateway identity; its repr never shows a key."""

    partner: str
    charset: str = "utf-8"
    sign_type: str = "MD5"
    md5_key: str | None = None
    private_key_pem: str | bytes | None = None
    notify_url: str | None = None
    dback_notify_url: str | None = None

    def __repr__(self) -> str:
        md5 = "<set>" if self.md5_key else "<unset>"
        rsa = "<set>" if self.private_key_pem else "<unset>"
        return (
            f"Merchant(partner={self.partner!r}, charset={self.charset!r}, "
            f"sign_type={self.sign_type!r}, md5_key={md5}, private_key_pem={rsa}, "
            f"notify_url={self.notify_url!r}, dback_notify_url={self.dback_notify_url!r})"
        )

    __str__ = __repr__


def is_valid_partner(partner: object) -> bool:
    """True for a partner (or seller user) id: 16 digits starting with 2088."""
    return isinstance(partner, str) and _PARTNER.fullmatch(partner) is not None


def check_merchant(merchant: Merchant) -> None:
    """Raise ConfigError naming the first merchant setting the gateway would refuse."""
    if not is_valid_partner(merchant.partner):
        raise ConfigError("partner must be 16 digits starting with 2088")
    if codec_for(merchant.charset) is None:
        raise ConfigError(f"charset {str(merchant.charset)[:20]!r} is not utf-8 or gbk")
    if merchant.sign_type not in SIGN_TYPES:
        raise ConfigError(f"sign_type {str(merchant.sign_type)[:20]!r} is not MD5 or RSA")
    for name in ("notify_url", "dback_notify_url"):
        url = getattr(merchant, name)
        if url:
            problem = notify_url_problem(url)
            if problem:
                raise ConfigError(f"{name} {problem}")


def build_refund_request(
    merchant: Merchant,
    *,
    batch_no: str,
    items: Sequence[RefundItem],
    now: datetime,
    service: str = SERVICE_NOPWD,
    seller_user_id: str | None = None,
    seller_email: str | None = None,
    use_freeze_amount: bool = False,
) -> dict[str, str]:
    """The full signed parameter set of one batch refund request sent at `now`.

    Raises ConfigError (merchant settings), DetailDataError (batch_no, date or
    items), ProtocolError (service or seller parameters) or SigningError
    (missing or unusable key).
    """
    check_merchant(merchant)
    if service not in SERVICES:
        raise ProtocolError(f"unknown refund service {str(service)[:60]!r}")
    if not is_valid_batch_no(batch_no):
        raise DetailDataError(
            f"batch_no {str(batch_no)[:40]!r} is not yyyyMMdd + 3-24 letters/digits"
        )
    today = beijing_date(now)
    if batch_no_date(batch_no) != today:
        raise DetailDataError(
            f"batch_no {batch_no} is not dated {today:%Y%m%d}, the Beijing date of refund_date"
        )
    clean = [replace(item, reason=sanitize_reason(item.reason, merchant.charset)) for item in items]
    detail_data = encode_detail_data(clean, charset=merchant.charset)

    params: dict[str, str] = {
        "service": service,
        "partner": merchant.partner,
        "_input_charset": merchant.charset,
    }
    if merchant.notify_url:
        params["notify_url"] = merchant.notify_url
    if service == SERVICE_NOPWD:
        if seller_user_id is not None or seller_email is not None:
            raise ProtocolError(f"seller_user_id/seller_email only apply to {SERVICE_PWD}")
        if merchant.dback_notify_url:
            params["dback_notify_url"] = merchant.dback_notify_url
    else:
        if use_freeze_amount:
            raise ProtocolError(f"use_freeze_amount only applies to {SERVICE_NOPWD}")
        params.update(_seller_params(seller_user_id, seller_email))
    params.update(
        {
            "batch_no": batch_no,
            "refund_date": refund_date(now),
            "batch_num": str(len(clean)),
            "detail_data": detail_data,
        }
    )
    if service == SERVICE_NOPWD:
        params["use_freeze_amount"] = "Y" if use_freeze_amount else "N"
        params["return_type"] = "xml"
    params["sign"] = sign(
        params,
        sign_type=merchant.sign_type,
        charset=merchant.charset,
        md5_key=merchant.md5_key,
        private_key_pem=merchant.private_key_pem,
    )
    params["sign_type"] = merchant.sign_type
    return params


def gateway_url_with_charset(url: str, charset: str) -> str:
    """The gateway URL with `_input_charset=<charset>` in its query (replacing any there).

    The charset keeps the merchant's spelling: it must equal the signed
    `_input_charset` parameter. Raises ConfigError for a non-http(s) URL or an
    unsupported charset.
    """
    if codec_for(charset) is None:
        raise ConfigError(f"charset {str(charset)[:20]!r} is not utf-8 or gbk")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError("gateway URL must be an absolute http(s) URL")
    query = [
        (key, value)
        for key, value in parse_qsl(parts.query, keep_blank_values=True)
        if key != "_input_charset"
    ]
    query.append(("_input_charset", charset))
    return urlunsplit(parts._replace(query=urlencode(query)))


def notify_verify_params(partner: str, notify_id: str) -> dict[str, str]:
    """Query parameters of the `notify_verify` GET that checks a notification is genuine."""
    if not is_valid_partner(partner):
        raise ConfigError("partner must be 16 digits starting with 2088")
    if not is_valid_notify_id(notify_id):
        raise NotifyFormatError("notify_id is not 1-128 printable ASCII characters")
    return {"service": NOTIFY_VERIFY_SERVICE, "partner": partner, "notify_id": notify_id}


def _seller_params(seller_user_id: str | None, seller_email: str | None) -> dict[str, str]:
    if not seller_user_id and not seller_email:
        raise ProtocolError(f"{SERVICE_PWD} needs seller_user_id or seller_email")
    params: dict[str, str] = {}
    if seller_user_id:
        if not is_valid_partner(seller_user_id):
            raise ProtocolError("seller_user_id must be 16 digits starting with 2088")
        params["seller_user_id"] = seller_user_id
    if seller_email:
        if not _EMAIL.fullmatch(seller_email):
            raise ProtocolError("seller_email must be 1-100 printable ASCII characters")
        params["seller_email"] = seller_email
    return params


def notify_url_problem(url: str, max_length: int = MAX_NOTIFY_URL_LENGTH) -> str | None:
    """What is wrong with a notify URL for Alipay (mapi and OpenAPI alike, each with its
    own length limit), or None."""
    if not isinstance(url, str) or not url:
        return "is empty"
    if len(url) > max_length:
        return f"is longer than {max_length} characters"
    if not url.isascii() or any(ch.isspace() for ch in url):
        return "must be ASCII without spaces"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return "must be an absolute http(s) URL"
    if parts.query or "?" in url or parts.fragment or "#" in url:
        return "must not carry a query string or fragment"
    return None
