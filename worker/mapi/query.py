"""`refund_fastpay_query`: asking the gateway what became of a batch refund.

When a batch's notification is late, lost, or left some items out, the worker
asks the gateway itself. The request is a signed mapi call, a form POST to
`<gateway>?_input_charset=<charset>` (or the same parameters as a GET)::

    service=refund_fastpay_query, partner, _input_charset, sign_type, sign,
    batch_no and/or trade_no (at least one)

A query by `batch_no` lists that batch's trades; a query by `trade_no` lists
every batch that refunded that trade, so entries of other batches are normal
(`RefundQueryAnswer.for_batch` keeps those of one batch).

The answer comes in one of two shapes, both read here:

* key-value text, the common one (one line)::

      is_success=T&result_details=20121204001^2012111620984834^0.01^TRADE_HAS_CLOSED#20121122001^2012111620984834^0.01^SUCCESS
      is_success=F&error_code=REFUND_NOT_EXIST

  possibly with `sign`, `sign_type` or `unfreezed_details` as well. Values
  come raw or form-encoded (`%5E` for `^`): `%XX` escapes are decoded, while a
  `+` stays a `+` (no value of the grammar holds a space, and an account may
  hold a `+`). Text is decoded in the query's charset, else in the other
  supported one. Blank segments and whitespace around segments are ignored;
* XML, the same names as the children of `<alipay>` (`error` or `error_code`
  for the code), read as safely as the submission answer (`worker.mapi.xmldoc`).

`result_details` entries are `batch_no^trade_no^amount^CODE`, possibly with
more `^` fields (the bank-card return flag and its result, e.g. `^true^S`,
`^N^`) and the optional fee, royalty and sub-trade parts of notification
entries; they are read by `worker.mapi.results.read_result_details`, the
same tolerant reader as a notification's, so both reach the ledger alike.

What an answer establishes (`QueryStatus`):

* FOUND: `is_success` T and every entry of `result_details` readable. Its
  items are facts about those batches and trades, and only such an answer
  shows that a batch holds no other trade than those listed under it;
* NOT_FOUND: `is_success` F with `REFUND_NOT_EXIST`. It only says that the
  gateway had no result to show when it answered: a batch it took may still be
  in progress, so this never proves by itself that a batch was not taken;
* REFUSED: `is_success` F with another well-formed code (a bad signature, a
  missing contract...): the query was refused and nothing was learnt;
* UNKNOWN: anything else -- an HTML page, an empty or oversized body, a
  field given twice, T together with an error, T without any entry, or an
  entry that cannot be read. Nothing follows from it, in particular not that
  some trade is absent (an unread entry may be exactly that trade); entries
  that could be read are still in `items` (each is a fact, safe to apply) and
  the others in `unread`.

The parser never raises. `detail` is a short sentence for logs that never holds
the signature or the whole answer; `fields` (left out of the repr) are the
answer's fields as received, for `worker.mapi.verify` when the answer is signed.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from urllib.parse import unquote_to_bytes

from worker.domain.errors import ProtocolError
from worker.mapi.charsets import codec_for
from worker.mapi.dates import is_valid_batch_no
from worker.mapi.detail import is_valid_trade_no
from worker.mapi.request import Merchant, check_merchant
from worker.mapi.results import ReadItem, UnreadEntry, read_result_details
from worker.mapi.signing import sign
from worker.mapi.xmldoc import UTF8_BOM, XmlFailure, read_xml_answer

QUERY_SERVICE = "refund_fastpay_query"
REFUND_NOT_EXIST = "REFUND_NOT_EXIST"
# 1000 entries with fee and royalty parts stay far below this.
MAX_ANSWER_BYTES = 1024 * 1024

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}", re.ASCII)
_CODE = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}", re.ASCII)
_MAX_REASONS = 3


class QueryStatus(enum.StrEnum):
    """What a `refund_fastpay_query` answer establishes (see the module docstring)."""

    FOUND = "found"
    NOT_FOUND = "not_found"
    REFUSED = "refused"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class RefundQueryAnswer:
    """A read `refund_fastpay_query` answer; `detail` is a short sentence for logs."""

    status: QueryStatus
    detail: str
    items: tuple[ReadItem, ...] = ()
    unread: tuple[UnreadEntry, ...] = ()
    error: str | None = None
    fields: Mapping[str, str] = field(
        default_factory=lambda: MappingProxyType({}), repr=False, compare=False
    )

    def for_batch(self, batch_no: str) -> tuple[ReadItem, ...]:
        """The items listed under `batch_no` (a query by trade shows other batches too)."""
        return tuple(item for item in self.items if item.batch_no == batch_no)


def build_refund_query(
    merchant: Merchant, *, batch_no: str | None = None, trade_no: str | None = None
) -> dict[str, str]:
    """The signed parameters of a `refund_fastpay_query` for a batch, a trade, or both.

    Raises ConfigError (merchant settings), ProtocolError (neither number, or one
    that is not well formed) or SigningError (missing or unusable key).
    """
    check_merchant(merchant)
    if batch_no is None and trade_no is None:
        raise ProtocolError(f"{QUERY_SERVICE} needs a batch_no, a trade_no or both")
    params: dict[str, str] = {
        "service": QUERY_SERVICE,
        "partner": merchant.partner,
        "_input_charset": merchant.charset,
    }
    if batch_no is not None:
        if not is_valid_batch_no(batch_no):
            raise ProtocolError(
                f"batch_no {str(batch_no)[:40]!r} is not yyyyMMdd + 3-24 letters/digits"
            )
        params["batch_no"] = batch_no
    if trade_no is not None:
        if not is_valid_trade_no(trade_no):
            raise ProtocolError(f"trade_no {str(trade_no)[:70]!r} is not 16-64 digits")
        params["trade_no"] = trade_no
    params["sign"] = sign(
        params,
        sign_type=merchant.sign_type,
        charset=merchant.charset,
        md5_key=merchant.md5_key,
        private_key_pem=merchant.private_key_pem,
    )
    params["sign_type"] = merchant.sign_type
    return params


def parse_refund_query(body: bytes, *, charset: str = "utf-8") -> RefundQueryAnswer:
    """Read a `refund_fastpay_query` answer (rules in the module docstring); never raises.

    `charset` is the `_input_charset` the query was sent with.
    """
    if not isinstance(body, bytes | bytearray):
        return _unknown("the answer is not bytes")
    data = bytes(body)
    if len(data) > MAX_ANSWER_BYTES:
        return _unknown(f"answer larger than {MAX_ANSWER_BYTES} bytes")
    bom = data.startswith(UTF8_BOM)
    text = data[len(UTF8_BOM) :].strip() if bom else data.strip()
    if not text:
        return _unknown("empty answer")
    if text.startswith(b"<"):
        fields = _xml_fields(UTF8_BOM + text if bom else text)
    else:
        fields = _kv_fields(text, charset)
    if isinstance(fields, _Unreadable):
        return _unknown(fields.reason)
    return _interpret(fields)


@dataclass(frozen=True)
class _Unreadable:
    reason: str


def _unknown(detail: str) -> RefundQueryAnswer:
    return RefundQueryAnswer(QueryStatus.UNKNOWN, detail)


def _xml_fields(data: bytes) -> dict[str, str] | _Unreadable:
    document = read_xml_answer(data)
    if isinstance(document, XmlFailure):
        return _Unreadable(document.reason)
    if document.root != "alipay":
        return _Unreadable(f"root element is <{document.root[:40]}>, not <alipay>")
    fields: dict[str, str] = {}
    for tag, text in document.children:
        if tag in fields:
            return _Unreadable(f"answer repeats <{tag[:40]}>")
        fields[tag] = text.strip()
    return fields


def _kv_fields(data: bytes, charset: str) -> dict[str, str] | _Unreadable:
    codec = codec_for(charset)
    if codec is None:
        return _Unreadable(f"unsupported charset {str(charset)[:20]!r}")
    fields: dict[str, str] = {}
    for segment in data.split(b"&"):
        raw_key, equals, raw_value = segment.strip().partition(b"=")
        if not raw_key and not equals:
            continue
        key = raw_key.strip().decode("latin-1")
        if not equals or not _KEY.fullmatch(key):
            return _Unreadable("answer is neither XML nor key=value pairs")
        if key in fields:
            return _Unreadable(f"answer repeats {key}")
        value = _decode_value(raw_value.strip(), codec)
        if value is None:
            return _Unreadable(f"the value of {key} is neither utf-8 nor gbk")
        fields[key] = value.strip()
    return fields


def _decode_value(raw: bytes, codec: str) -> str | None:
    if b"%" in raw:
        raw = unquote_to_bytes(raw)
    for candidate in (codec, "gbk" if codec == "utf-8" else "utf-8"):
        try:
            return raw.decode(candidate)
        except UnicodeDecodeError:
            continue
    return None


def _interpret(fields: dict[str, str]) -> RefundQueryAnswer:
    view = MappingProxyType(fields)
    flag = fields.get("is_success")
    if flag is None:
        return _unknown("answer has no is_success")
    codes = {fields[name] for name in ("error_code", "error") if fields.get(name)}
    if flag == "F":
        if not codes:
            return _unknown("is_success F without an error code")
        if len(codes) > 1:
            return _unknown("is_success F with two different error codes")
        code = codes.pop()
        if not _CODE.fullmatch(code):
            return _unknown("is_success F with a malformed error code")
        code = code.upper()
        if code == REFUND_NOT_EXIST:
            detail = f"the gateway has no such refund ({code})"
            return RefundQueryAnswer(QueryStatus.NOT_FOUND, detail, error=code, fields=view)
        detail = f"the gateway refused the query: {code}"
        return RefundQueryAnswer(QueryStatus.REFUSED, detail, error=code, fields=view)
    if flag != "T":
        return _unknown(f"is_success is {flag[:10]!r}, not T or F")
    if codes:
        return _unknown("is_success T together with an error")
    if not fields.get("result_details"):
        return _unknown("is_success T without result_details")
    reading = read_result_details(fields["result_details"], query=True)
    items, unread = reading.items, reading.unread
    if not unread:
        detail = f"the gateway listed {len(items)} refund(s)"
        return RefundQueryAnswer(QueryStatus.FOUND, detail, items=items, fields=view)
    reasons = sorted({entry.reason for entry in unread})
    detail = (
        f"{len(unread)} entr{'y' if len(unread) == 1 else 'ies'} of result_details"
        f" could not be read ({'; '.join(reasons[:_MAX_REASONS])}),"
        f" {len(items)} could"
    )
    return RefundQueryAnswer(QueryStatus.UNKNOWN, detail, items=items, unread=unread, fields=view)
