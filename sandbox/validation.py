"""The gateway's checks of a refund or query request, in the order a real gateway runs them.

Pure: a request's raw query string and body plus a `GatewayContext` (the
partners served with their keys, today's Beijing date) in, one verdict out. State-dependent checks
(`DUPLICATE_BATCH_NO`) and injected faults come afterwards, in
`sandbox.service`.

Reading the parameters. `_input_charset` is taken from the query string,
else from the form. Query string and form body are both decoded in that
charset (`+` is a space, `%XX` a byte). A parameter present in both keeps
the query string's value, as a servlet's `getParameter` does: that is why a
form saying `UTF-8` behind a URL saying `utf-8` fails the signature check
(the signature covers the form's spelling, the gateway reads the URL's).
A body that is not a form (another Content-Type) carries no parameters.
A parameter with an empty value counts as absent.

The checks, first failure wins:

1. `service`: missing or not one this gateway serves -> ILLEGAL_SERVICE
   (`notify_verify` is answered separately, see `NotifyVerifyQuery`).
   The refund query `refund_fastpay_query` goes through checks 2-5 like a
   refund request, then needs `batch_no` or `trade_no` (else
   ILLEGAL_ARGUMENT) and becomes a `RefundQuery` (`sandbox.query`).
2. `partner`: missing, not `2088` + 12 digits, or not one of the partners
   this sandbox serves -> ILLEGAL_PARTNER. Every later check uses the
   partner the request names (its keys, its seller id).
3. `_input_charset`: missing, not utf-8/gbk (any case), or the query string
   or body holds bytes that are not valid in it -> ILLEGAL_CHARSET.
   A parameter repeated within the query string or within the body, or a
   parameter without a name -> ILLEGAL_ARGUMENT.
4. `sign_type`: missing or not exactly `MD5` / `RSA` -> ILLEGAL_SIGN_TYPE.
5. `sign`: missing, or does not verify over the decoded values (MD5 with
   that partner's key, RSA with that partner's public key; no key of that
   type configured for that partner means it cannot verify) -> ILLEGAL_SIGN.
6. `refund_fastpay_by_platform_pwd` only: the seller (`sandbox.seller`):
   neither `seller_user_id` nor `seller_email` -> ILLEGAL_ARGUMENT; a
   malformed `seller_user_id` -> ILLEGAL_USER; a seller that is not the
   partner's own account -> SELLER_INFO_NOT_EXIST.
7. `batch_no`, `refund_date`, `batch_num`, `detail_data` missing ->
   ILLEGAL_ARGUMENT; `notify_url` / `dback_notify_url` longer than 200
   characters, not http(s) or carrying a query string, `use_freeze_amount`
   not Y/N, `return_type` not `xml` -> ILLEGAL_ARGUMENT. The password service
   needs `notify_url` (its only way back to the merchant; missing ->
   ILLEGAL_ARGUMENT) and has no `dback_notify_url`, `use_freeze_amount` or
   `return_type`: those are ignored, unchecked, and named in
   `RefundRequest.ignored`.
8. `batch_no` not `yyyyMMdd` + 3-24 letters/digits (not `000`) ->
   BATCH_NO_FORMAT_ERROR.
9. `refund_date` not `yyyy-MM-dd HH:mm:ss` or not today (Beijing) ->
   REFUND_DATE_ERROR.
10. `batch_no` date not today (Beijing) -> BATCH_NO_FORMAT_ERROR.
11. `batch_num` not a positive integer -> BATCH_NUM_ERROR; above 1000 ->
    BATCH_NUM_EXCEED_LIMIT.
12. more than 1000 items -> BATCH_NUM_EXCEED_LIMIT; item count differs from
    `batch_num` -> BATCH_NUM_NOT_EQUAL_TOTAL.
13. item by item, in order: not `trade_no^amount^reason`, a trade_no that is
    not 16-64 digits, an amount that is not > 0 with exactly two decimals
    -> DETAIL_DATA_FORMAT_ERROR (a royalty `|` in the password service ->
    PWD_REFUND_NOT_ALLOW_ROYALTY); a trade already in the batch ->
    DUBL_TRADE_NO_IN_SAME_BATCH; a reason above 256 bytes in the charset ->
    SINGLE_DETAIL_DATA_EXCEED_LIMIT (`sandbox.detail_rules`).

Then (service layer): DUPLICATE_BATCH_NO when the batch_no was accepted
before from the same partner; the `lock_error` and `sync_item_failure` faults; else accepted.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Final
from urllib.parse import unquote_to_bytes, urlsplit

from sandbox.config import PartnerConfig
from sandbox.detail_rules import detail_data_problem, loose_amount
from sandbox.query import QUERY_SERVICE, RefundQuery, read_query
from sandbox.seller import Seller, SellerProblem, seller_of
from worker.domain.errors import DetailDataError, NotifyFormatError
from worker.mapi import (
    SERVICE_NOPWD,
    SERVICE_PWD,
    SUPPORTED_CHARSETS,
    DetailRow,
    RefundItem,
    batch_no_date,
    codec_for,
    decode_detail_rows,
    decode_form,
    is_valid_batch_no,
    is_valid_partner,
    verify,
)

__all__ = [
    "NOPWD_SERVICE",
    "NOTIFY_VERIFY_SERVICE",
    "PWD_SERVICE",
    "REFUND_SERVICES",
    "GatewayContext",
    "NotifyVerifyQuery",
    "RefundRequest",
    "Refusal",
    "check_gateway_request",
]

NOPWD_SERVICE: Final = SERVICE_NOPWD
PWD_SERVICE: Final = SERVICE_PWD
NOTIFY_VERIFY_SERVICE: Final = "notify_verify"
REFUND_SERVICES: Final = frozenset({NOPWD_SERVICE, PWD_SERVICE})

MAX_ITEMS: Final = 1000
MAX_URL_CHARS: Final = 200

_REFUND_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}", re.ASCII)
_BATCH_NUM = re.compile(r"[1-9][0-9]{0,8}", re.ASCII)
_FORM_TYPES: Final = ("", "application/x-www-form-urlencoded")
# Parameters of the password-free service that the password service does not take.
_NOT_PWD: Final = ("dback_notify_url", "use_freeze_amount", "return_type")


@dataclass(frozen=True)
class GatewayContext:
    """The partners the gateway serves (by id, with their keys), and today's Beijing date."""

    partners: Mapping[str, PartnerConfig]
    today: date

    @classmethod
    def single(
        cls, partner: str, md5_key: str | None, merchant_public_key: bytes | None, today: date
    ) -> GatewayContext:
        """The context of a gateway serving one partner."""
        return cls({partner: PartnerConfig(partner, md5_key, merchant_public_key)}, today)


@dataclass(frozen=True)
class Refusal:
    """An `F` answer: the code, plus what could be read of the request (for the ledger).

    `charset` is the `_input_charset` asked for when it names a known one;
    `partner` the partner named when it is one the gateway serves.
    """

    code: str
    reason: str
    service: str | None = None
    batch_no: str | None = None
    item_count: int | None = None
    charset: str | None = None
    partner: str | None = None


@dataclass(frozen=True)
class NotifyVerifyQuery:
    """A `service=notify_verify` request (values as received, None when absent)."""

    partner: str | None
    notify_id: str | None


@dataclass(frozen=True)
class RefundRequest:
    """A refund request that passed every stateless check.

    `rows` holds the items as `(trade_no, amount, reason)` tuples, the form
    the books take them in; `items` gives them as RefundItems. `partner` is
    the (served) partner that signed it.
    """

    partner: str
    service: str
    charset: str
    sign_type: str
    batch_no: str
    refund_date: str
    rows: tuple[DetailRow, ...]
    notify_url: str | None
    dback_notify_url: str | None
    seller: Seller | None = None
    ignored: tuple[str, ...] = ()

    @property
    def items(self) -> tuple[RefundItem, ...]:
        return tuple(RefundItem(*row) for row in self.rows)


Verdict = Refusal | NotifyVerifyQuery | RefundRequest | RefundQuery


class _Refused(Exception):
    def __init__(self, code: str, reason: str) -> None:
        super().__init__(code)
        self.code = code
        self.reason = reason


def check_gateway_request(
    query: bytes, body: bytes, content_type: str, ctx: GatewayContext
) -> Verdict:
    """Run the checks of the module docstring over one `/gateway.do` request."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type not in _FORM_TYPES:
        body = b""
    raw_query = _raw_segments(query)
    raw_body = _raw_segments(body)

    def lenient(name: str) -> str | None:
        for raw in (raw_query, raw_body):
            if name.encode() in raw:
                text = unquote_to_bytes(raw[name.encode()].replace(b"+", b" ")).decode(
                    "utf-8", "replace"
                )
                return text or None
        return None

    service = lenient("service")
    if service == NOTIFY_VERIFY_SERVICE:
        return NotifyVerifyQuery(partner=lenient("partner"), notify_id=lenient("notify_id"))
    batch_hint = lenient("batch_no")
    partner: PartnerConfig | None = None
    try:
        if service is None or (service not in REFUND_SERVICES and service != QUERY_SERVICE):
            raise _Refused("ILLEGAL_SERVICE", f"service {str(service)[:60]!r} is not served")
        named = lenient("partner")
        partner = ctx.partners.get(named) if named and is_valid_partner(named) else None
        if partner is None:
            raise _Refused("ILLEGAL_PARTNER", "partner is missing or not one this gateway serves")
        charset, params = _decode_params(query, body, lenient("_input_charset"))
        return _check_params(service, charset, params, partner, ctx.today)
    except _Refused as refused:
        charset_hint = (lenient("_input_charset") or "").lower()
        return Refusal(
            code=refused.code,
            reason=refused.reason,
            service=service,
            batch_no=batch_hint if batch_hint and len(batch_hint) <= 64 else None,
            charset=charset_hint if charset_hint in SUPPORTED_CHARSETS else None,
            partner=partner.partner if partner is not None else None,
        )


def _raw_segments(data: bytes) -> dict[bytes, bytes]:
    """First raw (still percent-encoded) value of each raw key; cheap, for a first look."""
    out: dict[bytes, bytes] = {}
    for segment in data.split(b"&"):
        key, _, value = segment.partition(b"=")
        if key and key not in out:
            out[key] = value
    return out


def _decode_params(query: bytes, body: bytes, charset: str | None) -> tuple[str, dict[str, str]]:
    """(charset, parameters): rule 3 of the module docstring, then the merge."""
    codec = codec_for(charset) if charset else None
    if charset is None or codec is None:
        raise _Refused(
            "ILLEGAL_CHARSET", f"_input_charset {str(charset)[:20]!r} is not utf-8 or gbk"
        )
    decoded: list[dict[str, str]] = []
    for part, where in ((query, "query string"), (body, "body")):
        try:
            decoded.append(decode_form(part, charset))
        except NotifyFormatError:
            if not _valid_in(part, codec):
                raise _Refused("ILLEGAL_CHARSET", f"the {where} is not valid {codec}") from None
            raise _Refused(
                "ILLEGAL_ARGUMENT", f"the {where} repeats a parameter or has an unnamed one"
            ) from None
    from_query, from_body = decoded
    params = {k: v for k, v in from_body.items() if v != ""}
    params.update((k, v) for k, v in from_query.items() if v != "")
    return charset, params


def _valid_in(part: bytes, codec: str) -> bool:
    try:
        unquote_to_bytes(part.replace(b"+", b" ")).decode(codec)
    except UnicodeDecodeError:
        return False
    return True


def _check_params(
    service: str, charset: str, params: Mapping[str, str], partner: PartnerConfig, today: date
) -> RefundRequest | RefundQuery:
    sign_type = params.get("sign_type")
    if sign_type not in ("MD5", "RSA"):
        raise _Refused("ILLEGAL_SIGN_TYPE", f"sign_type {str(sign_type)[:20]!r} is not MD5 or RSA")
    if "sign" not in params:
        raise _Refused("ILLEGAL_SIGN", "sign is missing")
    if sign_type not in partner.sign_types:
        raise _Refused("ILLEGAL_SIGN", f"no {sign_type} key is configured for the partner")
    md5_key, public_key = partner.md5_key, partner.merchant_public_key
    if not verify(params, charset=charset, md5_key=md5_key, public_key_pem=public_key):
        raise _Refused("ILLEGAL_SIGN", f"{sign_type} signature does not verify")
    if service == QUERY_SERVICE:
        query = read_query(partner.partner, charset, sign_type, params)
        if query is None:
            raise _Refused("ILLEGAL_ARGUMENT", "batch_no or trade_no is required")
        return query
    pwd = service == PWD_SERVICE
    seller = _check_seller(params, partner) if pwd else None
    for name in ("batch_no", "refund_date", "batch_num", "detail_data"):
        if name not in params:
            raise _Refused("ILLEGAL_ARGUMENT", f"{name} is missing")
    notify_url = _optional_url(params, "notify_url")
    if pwd and notify_url is None:
        raise _Refused("ILLEGAL_ARGUMENT", "notify_url is missing (the password service needs it)")
    ignored = tuple(name for name in _NOT_PWD if name in params) if pwd else ()
    dback_notify_url = None if pwd else _optional_url(params, "dback_notify_url")
    if not pwd and params.get("use_freeze_amount", "N") not in ("Y", "N"):
        raise _Refused("ILLEGAL_ARGUMENT", "use_freeze_amount must be Y or N")
    if not pwd and params.get("return_type", "xml") != "xml":
        raise _Refused("ILLEGAL_ARGUMENT", "return_type must be xml")

    batch_no = params["batch_no"]
    if not is_valid_batch_no(batch_no):
        raise _Refused("BATCH_NO_FORMAT_ERROR", "batch_no is not yyyyMMdd + 3-24 letters/digits")
    refund_date = params["refund_date"]
    if _refund_day(refund_date) != today:
        raise _Refused("REFUND_DATE_ERROR", f"refund_date is not today ({today}, Beijing)")
    if batch_no_date(batch_no) != today:
        raise _Refused("BATCH_NO_FORMAT_ERROR", f"batch_no is not dated today ({today})")
    batch_num_text = params["batch_num"]
    if not _BATCH_NUM.fullmatch(batch_num_text):
        raise _Refused("BATCH_NUM_ERROR", "batch_num is not a positive integer")
    batch_num = int(batch_num_text)
    if batch_num > MAX_ITEMS:
        raise _Refused("BATCH_NUM_EXCEED_LIMIT", f"batch_num {batch_num} is above {MAX_ITEMS}")
    detail_data = params["detail_data"]
    count = detail_data.count("#") + 1
    if count > MAX_ITEMS:
        raise _Refused("BATCH_NUM_EXCEED_LIMIT", f"detail_data holds {count} items")
    if count != batch_num:
        raise _Refused("BATCH_NUM_NOT_EQUAL_TOTAL", f"batch_num {batch_num} but {count} items")
    try:
        rows = decode_detail_rows(detail_data, charset=charset)
    except DetailDataError:
        code, reason = detail_data_problem(detail_data, charset, pwd=service == PWD_SERVICE)
        raise _Refused(code, reason) from None
    if loose_amount(detail_data):
        raise _Refused("DETAIL_DATA_FORMAT_ERROR", "an amount does not have exactly two decimals")
    return RefundRequest(
        partner=partner.partner,
        service=service,
        charset=charset,
        sign_type=sign_type,
        batch_no=batch_no,
        refund_date=refund_date,
        rows=tuple(rows),
        notify_url=notify_url,
        dback_notify_url=dback_notify_url,
        seller=seller,
        ignored=ignored,
    )


def _check_seller(params: Mapping[str, str], partner: PartnerConfig) -> Seller:
    found = seller_of(params, partner)
    if isinstance(found, SellerProblem):
        raise _Refused(found.code, found.reason)
    return found


def _optional_url(params: Mapping[str, str], name: str) -> str | None:
    url = params.get(name)
    if url is None:
        return None
    if len(url) > MAX_URL_CHARS:
        raise _Refused("ILLEGAL_ARGUMENT", f"{name} is longer than {MAX_URL_CHARS} characters")
    try:
        parts = urlsplit(url)
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        raise _Refused("ILLEGAL_ARGUMENT", f"{name} is not a URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
        raise _Refused("ILLEGAL_ARGUMENT", f"{name} is not an http(s) URL")
    if parts.query or parts.fragment:
        raise _Refused("ILLEGAL_ARGUMENT", f"{name} must not carry a query string")
    return url


def _refund_day(text: str) -> date | None:
    if not _REFUND_DATE.fullmatch(text):
        return None
    try:
        return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").date()
    except ValueError:
        return None
