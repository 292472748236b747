"""Reading `result_details` as tolerantly as its grammar allows (docs/mapi.md, "Results").

The grammar of one entry, as Alipay's tables and public integrations give it::

    trade part [ "$" fee part ] { "|" royalty part } [ "$$" sub-trade part ]

and "the trade part may not be empty, every other part may be": `T^A^SUCCESS$`
(an empty fee part), `T^A^SUCCESS$|...`, a trailing `$$`, a trailing or doubled
`#` are all legal. Entries are joined with `#`.

* notification trade part: `trade_no^amount^CODE`
* query trade part:        `batch_no^trade_no^amount^CODE[^more fields]` (the bank-card
  return flag and its result may follow the code)

`read_result_details` never raises. Only the trade part is required; empty
optional parts and empty entries are skipped; an entry whose trade part cannot
be read is returned in `unread` with the reason, and every other entry is
applied. The code is kept verbatim (trimmed): anything other than `SUCCESS`
(any letter case) is a failure of that item. Trade numbers are not judged by
their shape: the caller matches them to its own records. Optional parts are
kept as raw text; the worker does not act on them.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from worker.mapi.amounts import parse_reported_amount

__all__ = ["ReadItem", "ResultReading", "UnreadEntry", "read_result_details"]

SUCCESS = "SUCCESS"
_MAX_REASON_TEXT = 200


@dataclass(frozen=True, slots=True)
class ReadItem:
    """One trade's result; `amount` is None when the amount text was not an amount."""

    trade_no: str
    code: str
    amount: Decimal | None
    amount_text: str
    raw: str
    batch_no: str | None = None  # query answers name the batch of each entry
    extra: tuple[str, ...] = ()  # fields after the code (query answers)
    fee: str | None = None  # raw optional parts, kept for the record
    royalties: tuple[str, ...] = ()
    sub_trades: tuple[str, ...] = ()

    @property
    def succeeded(self) -> bool:
        return self.code.upper() == SUCCESS


@dataclass(frozen=True, slots=True)
class UnreadEntry:
    """An entry (or part) that could not be understood, with why."""

    raw: str
    reason: str


@dataclass(frozen=True, slots=True)
class ResultReading:
    items: tuple[ReadItem, ...]
    unread: tuple[UnreadEntry, ...]

    @property
    def complete(self) -> bool:
        return not self.unread


def read_result_details(text: object, *, query: bool = False) -> ResultReading:
    """Read `result_details` of a notification (or, with `query=True`, of a query answer)."""
    if not isinstance(text, str):
        return ResultReading((), (UnreadEntry("", "result_details is not text"),))
    items: list[ReadItem] = []
    unread: list[UnreadEntry] = []
    for raw in text.split("#"):
        entry = raw.strip()
        if not entry:
            continue
        item = _read_entry(entry, query=query)
        if isinstance(item, UnreadEntry):
            unread.append(item)
        else:
            items.append(item)
    if not items and not unread:
        unread.append(UnreadEntry(text[:_MAX_REASON_TEXT], "result_details holds no entry"))
    return ResultReading(tuple(items), tuple(unread))


def _read_entry(entry: str, *, query: bool) -> ReadItem | UnreadEntry:
    main, sep, sub_text = entry.partition("$$")
    sub_trades = tuple(p for p in sub_text.split("$$") if p) if sep else ()
    head, *royalty_texts = main.split("|")
    trade_text, _, fee_text = head.partition("$")
    fields = [f.strip() for f in trade_text.split("^")]
    wanted = 4 if query else 3
    if len(fields) < wanted:
        return UnreadEntry(entry[:_MAX_REASON_TEXT], f"trade part has fewer than {wanted} fields")
    batch_no = fields[0] if query else None
    trade_no, amount_text, code = fields[1:4] if query else fields[0:3]
    if not trade_no:
        return UnreadEntry(entry[:_MAX_REASON_TEXT], "trade part has no trade number")
    if not code:
        return UnreadEntry(entry[:_MAX_REASON_TEXT], "trade part has no result code")
    if query and not batch_no:
        return UnreadEntry(entry[:_MAX_REASON_TEXT], "query entry has no batch number")
    return ReadItem(
        trade_no=trade_no,
        code=code,
        amount=parse_reported_amount(amount_text),
        amount_text=amount_text,
        raw=entry,
        batch_no=batch_no,
        extra=tuple(fields[wanted:]),
        fee=fee_text or None,
        royalties=tuple(t for t in royalty_texts if t),
        sub_trades=sub_trades,
    )
