"""The parts of a `result_details` entry, read strictly into typed values.

`batch_refund_notify` and the `refund_fastpay_query` answer describe one
refunded trade with the same entry shape; only the trade part differs::

    trade part [ "$" fee part ] { "|" royalty part } { "$$" sub-trade part }

    fee part        account^user_id^amount^CODE          (fee refunded to the merchant)
    royalty part    out_account^out_user_id^in_account^in_user_id^amount^CODE
    sub-trade part  refund_amount^refundable_amount^CODE

CODE is `SUCCESS` or an error code, any letter case (normalised to upper
case). Amounts may have fewer than two decimals (`80`, `0`) but are always a
whole number of cents. Entries are joined with `#`, which appears nowhere
inside an entry.

Every helper raises NotifyFormatError naming `where` (the entry and part);
the message quotes at most a short prefix of the offending text. These are
the typed parts of `worker.mapi.notify.parse_notify`; the pipeline itself
reads results with the tolerant `worker.mapi.results`, which keeps the
optional parts as raw text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

from worker.domain.errors import NotifyFormatError
from worker.mapi.amounts import parse_reported_amount

SUCCESS = "SUCCESS"
ENTRY_SEPARATOR = "#"

_CODE = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}", re.ASCII)


class ResultOutcome:
    """A result part whose `code` is `SUCCESS` or the gateway's error code."""

    code: str

    @property
    def succeeded(self) -> bool:
        return self.code == SUCCESS


@dataclass(frozen=True)
class FeePart(ResultOutcome):
    """Service fee given back with the refund (`$account^user_id^amount^CODE`)."""

    account: str
    user_id: str
    amount: Decimal
    code: str


@dataclass(frozen=True)
class RoyaltyPart(ResultOutcome):
    """A royalty given back (`|out_account^out_user_id^in_account^in_user_id^amount^CODE`)."""

    out_account: str
    out_user_id: str
    in_account: str
    in_user_id: str
    amount: Decimal
    code: str


@dataclass(frozen=True)
class SubTradePart(ResultOutcome):
    """A sub-trade refund (`$$refund_amount^refundable_amount^CODE`)."""

    amount: Decimal
    refundable_amount: Decimal
    code: str


def split_entry(raw: str) -> tuple[str, str | None, list[str], list[str]]:
    """(trade part, fee part or None, royalty parts, sub-trade parts) of one entry's text."""
    main, *sub_texts = raw.split("$$")
    head, *royalty_texts = main.split("|")
    trade_text, has_fee, fee_text = head.partition("$")
    return trade_text, (fee_text if has_fee else None), royalty_texts, sub_texts


def fee_part(text: str, where: str) -> FeePart:
    """Parse a fee part (`account^user_id^amount^CODE`)."""
    account, user_id, amount, code = split_fields(text, 4, f"{where} fee part")
    return FeePart(account, user_id, result_amount(amount, where), result_code(code, where))


def royalty_part(text: str, where: str) -> RoyaltyPart:
    """Parse a royalty part (`out_account^out_user_id^in_account^in_user_id^amount^CODE`)."""
    out_account, out_user, in_account, in_user, amount, code = split_fields(
        text, 6, f"{where} royalty part"
    )
    return RoyaltyPart(
        out_account,
        out_user,
        in_account,
        in_user,
        result_amount(amount, where),
        result_code(code, where),
    )


def sub_trade_part(text: str, where: str) -> SubTradePart:
    """Parse a sub-trade part (`refund_amount^refundable_amount^CODE`)."""
    amount, refundable, code = split_fields(text, 3, f"{where} sub-trade part")
    return SubTradePart(
        result_amount(amount, where), result_amount(refundable, where), result_code(code, where)
    )


def split_fields(text: str, count: int, where: str) -> list[str]:
    """`text` split on `^` into exactly `count` fields, none holding a `$`."""
    fields = text.split("^")
    if len(fields) != count or "$" in text:
        raise NotifyFormatError(f"{where}: expected {count} '^'-separated fields")
    return fields


def result_amount(text: str, where: str) -> Decimal:
    """A reported amount (>= 0, whole cents, possibly fewer than two decimals)."""
    value = parse_reported_amount(text)
    if value is None:
        raise NotifyFormatError(f"{where}: amount {text[:30]!r} is not a non-negative amount")
    return value


def result_code(text: str, where: str) -> str:
    """A result code in upper case (`SUCCESS` or an error code)."""
    if not _CODE.fullmatch(text):
        raise NotifyFormatError(f"{where}: result code {text[:30]!r} is malformed")
    # Codes are upper case; some gateways were seen lower-casing them.
    return text.upper()
