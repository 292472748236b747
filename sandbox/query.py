"""The refund query service `refund_fastpay_query`, answered from the sandbox's books.

Request: `/gateway.do`, GET query string or POST form, `_input_charset` in
the URL or the parameters, like the refund services, with `service`,
`partner`, `_input_charset`, `sign_type`, `sign`, and `batch_no` and/or
`trade_no`. `sandbox.validation` checks partner, charset, sign type
and signature exactly as for a refund request (same codes, same order), then
asks for at least one of `batch_no` / `trade_no` (else ILLEGAL_ARGUMENT).
The query answers from the books of the asking partner only: another
partner's batches (even of the same batch_no, or refunding the same trade)
are not found.
Their format is not checked: a number that matches nothing finds nothing.

Answer: a form-encoded body (not XML) in the request's charset, Content-Type
`text/plain; charset=<charset>`, values URL-encoded (`^ # $ |` arrive as
`%5E %23 %24 %7C`), as public integrations read it (`parse_str`, or
splitting on `&` and `=`):

* found: `is_success=T&result_details=BATCH_NO^TRADE_NO^AMOUNT^CODE#...`, one
  entry per refund item the gateway processed (executed or refused) that
  matches: by `batch_no` the items of that batch, by `trade_no` every refund
  of that trade in any batch (external refunds included), by both the
  intersection; oldest batch first, request order within a batch. AMOUNT has
  two decimals. Real answers may carry more `^` fields after the code (the
  bank-card return flag and its result); the sandbox adds `^N^` or `^Y^S`
  (the latter only to SUCCESS) to about half the entries, decided by a hash
  of batch_no and trade_no, so the same query always gets the same text.
* nothing found (unknown batch_no, a batch never accepted, a batch whose
  items were all skipped): `is_success=F&error_code=REFUND_NOT_EXIST`.
* refused request: `is_success=F&error_code=<CODE>` (ILLEGAL_PARTNER,
  ILLEGAL_CHARSET, ILLEGAL_ARGUMENT, ILLEGAL_SIGN_TYPE, ILLEGAL_SIGN), in the
  request's `_input_charset` when it names one the gateway knows, else GBK.
  (Only an unknown `service` is answered in the refund services' XML: the
  gateway cannot tell which service was meant.)

The query only reads the books: nothing is journaled. Faults with
`service="query"` (or `any`) apply to queries that passed the checks:
`http_5xx`, `hang`, `slow` and `garbage`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import structlog

from sandbox.answers import HTML_TYPE, Answer, error_page, garbage_body, text_type
from sandbox.faults import FaultBook
from sandbox.protocol import SKIPPED, SUCCESS
from sandbox.records import BatchRecord, ExternalRefundRecord
from worker.mapi import codec_for, encode_form

__all__ = [
    "QUERY_SERVICE",
    "REFUND_NOT_EXIST",
    "QueryDesk",
    "QueryItem",
    "RefundQuery",
    "bank_card_fields",
    "found_answer",
    "matching_items",
    "read_query",
    "refusal_answer",
]

log = structlog.get_logger(__name__)

QUERY_SERVICE: Final = "refund_fastpay_query"
REFUND_NOT_EXIST: Final = "REFUND_NOT_EXIST"

# (batch_no, trade_no, two-decimal amount, code)
QueryItem = tuple[str, str, str, str]
Books = BatchRecord | ExternalRefundRecord


@dataclass(frozen=True)
class RefundQuery:
    """A `refund_fastpay_query` request that passed every check, from `partner`."""

    partner: str
    charset: str
    sign_type: str
    batch_no: str | None
    trade_no: str | None


def read_query(
    partner: str, charset: str, sign_type: str, params: Mapping[str, str]
) -> RefundQuery | None:
    """The query of signed, checked parameters; None when neither batch_no nor trade_no is given."""
    batch_no, trade_no = params.get("batch_no"), params.get("trade_no")
    if batch_no is None and trade_no is None:
        return None
    return RefundQuery(
        partner=partner, charset=charset, sign_type=sign_type, batch_no=batch_no, trade_no=trade_no
    )


def matching_items(records: Iterable[Books], *, trade_no: str | None) -> list[QueryItem]:
    """The processed items of `records` (oldest first), narrowed to `trade_no` when given."""
    found: list[tuple[float, list[QueryItem]]] = []
    for record in records:
        if isinstance(record, ExternalRefundRecord):
            if trade_no not in (None, record.trade_no):
                continue
            amount = str(record.amount)
            items = [(b, record.trade_no, amount, SUCCESS) for b in record.batch_nos]
        else:
            items = [
                (record.batch_no, t, str(a), c)
                for t, a, _, c, _ in record.items
                if c != SKIPPED and trade_no in (None, t)
            ]
        if items:
            found.append((record.ts, items))
    found.sort(key=lambda entry: entry[0])
    return [item for _, items in found for item in items]


def bank_card_fields(batch_no: str, trade_no: str, code: str) -> str:
    """The extra `^` fields of one entry: ``, `^N^` or (SUCCESS only) `^Y^S`, by a fixed hash."""
    pick = hashlib.md5(f"{batch_no}^{trade_no}".encode("ascii", "replace")).digest()[0] % 4
    if pick < 2:
        return ""
    return "^Y^S" if pick == 3 and code == SUCCESS else "^N^"


def found_answer(items: Sequence[QueryItem], charset: str) -> bytes:
    """`is_success=T&result_details=...` (see the module docstring), form-encoded in `charset`."""
    details = "#".join(f"{b}^{t}^{a}^{c}{bank_card_fields(b, t, c)}" for b, t, a, c in items)
    return encode_form({"is_success": "T", "result_details": details}, charset)


def refusal_answer(code: str, charset: str | None) -> tuple[bytes, str]:
    """(body, content type) of `is_success=F&error_code=CODE`, in `charset` when it is known."""
    used = charset.lower() if charset and codec_for(charset) else "gbk"
    return encode_form({"is_success": "F", "error_code": code}, used), text_type(used)


class QueryDesk:
    """Answers checked queries from the books, with the query faults applied.

    `lookup(partner, batch_no)` returns the records of that partner to
    search: its batch (worker or external) of that number, or all its
    records when `batch_no` is None. It must copy what it returns under the
    books' lock; the search runs outside it.
    """

    def __init__(
        self, faults: FaultBook, lookup: Callable[[str, str | None], Sequence[Books]]
    ) -> None:
        self._faults = faults
        self._lookup = lookup

    def answer(self, query: RefundQuery) -> Answer:
        fault = self._faults.draw("http_5xx", service="query")
        if fault is not None:
            self._fault_log("http_5xx", query)
            status = int(fault.option("status"))
            return Answer(status, error_page(status), HTML_TYPE)
        delay = 0.0
        fault = self._faults.draw("hang", service="query")
        if fault is not None:
            self._fault_log("hang", query)
            delay = float(fault.option("seconds"))
            if not fault.option("accept"):
                return Answer(504, error_page(504), HTML_TYPE, delay=delay)
        fault = self._faults.draw("garbage", service="query")
        if fault is not None:
            self._fault_log("garbage", query)
            kind = str(fault.option("body"))
            if kind == "any":
                kind = self._faults.choice(("html", "truncated"))
            body, content_type = garbage_body("query", kind)
            return Answer(200, body, content_type, delay=delay)
        if delay == 0.0:
            fault = self._faults.draw("slow", service="query")
            if fault is not None:
                self._fault_log("slow", query)
                delay = float(fault.option("seconds"))
        records = self._lookup(query.partner, query.batch_no)
        items = matching_items(records, trade_no=query.trade_no)
        if items:
            body = found_answer(items, query.charset)
        else:
            body, _ = refusal_answer(REFUND_NOT_EXIST, query.charset)
        log.info(
            "sandbox.query.answered",
            partner=query.partner,
            batch_no=query.batch_no,
            trade_no=query.trade_no,
            items=len(items),
            error_code=None if items else REFUND_NOT_EXIST,
        )
        return Answer(200, body, text_type(query.charset.lower()), delay=delay)

    @staticmethod
    def _fault_log(name: str, query: RefundQuery) -> None:
        log.info("sandbox.fault.injected", fault=name, batch_no=query.batch_no, service="query")
