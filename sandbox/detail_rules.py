"""Rule 13 of the gateway's checks (`sandbox.validation`): the items of `detail_data`.

Item by item, in request order, first failure wins:

* not `trade_no^amount^reason` (a `|` or `$` anywhere in the item included)
  -> DETAIL_DATA_FORMAT_ERROR; in the password service a royalty `|` ->
  PWD_REFUND_NOT_ALLOW_ROYALTY;
* a trade_no that is not 16-64 digits -> DETAIL_DATA_FORMAT_ERROR;
* a trade already in the batch -> DUBL_TRADE_NO_IN_SAME_BATCH;
* an amount that is not > 0, or lacks exactly two decimals ->
  DETAIL_DATA_FORMAT_ERROR;
* a reason that cannot be encoded in the charset -> DETAIL_DATA_FORMAT_ERROR;
  above 256 bytes in it -> SINGLE_DETAIL_DATA_EXCEED_LIMIT.

`worker.mapi.decode_detail_rows` reads a `detail_data` the gateway takes,
except that it also reads amounts with fewer than two decimals (`5`, `0.5`),
which the gateway refuses: `loose_amount` finds those.
"""

from __future__ import annotations

import re
from typing import Final

from worker.domain.errors import DetailDataError
from worker.mapi import codec_for, is_valid_trade_no, parse_amount

__all__ = ["MAX_REASON_BYTES", "detail_data_problem", "loose_amount"]

MAX_REASON_BYTES: Final = 256
_AMOUNT_2DP = re.compile(r"[0-9]+\.[0-9]{2}", re.ASCII)


def loose_amount(detail_data: str) -> bool:
    """Whether an item's amount lacks exactly two decimals.

    For a `detail_data` that `decode_detail_rows` read: every item is
    `trade_no^amount^reason` then.
    """
    return any(not _AMOUNT_2DP.fullmatch(item.split("^")[1]) for item in detail_data.split("#"))


def detail_data_problem(detail_data: str, charset: str, *, pwd: bool = False) -> tuple[str, str]:
    """The code and reason of the first item rule `detail_data` breaks (the module docstring).

    Called when `decode_detail_rows` refused the text, to name the gateway's
    code for it; an unexpected refusal falls back to DETAIL_DATA_FORMAT_ERROR.
    """
    codec = codec_for(charset) or "utf-8"
    seen: set[str] = set()
    for index, raw in enumerate(detail_data.split("#"), start=1):
        where = f"item {index}"
        if pwd and "|" in raw:
            return "PWD_REFUND_NOT_ALLOW_ROYALTY", f"{where} refunds royalties"
        fields = raw.split("^")
        if len(fields) != 3 or any(sep in raw for sep in "|$"):
            return "DETAIL_DATA_FORMAT_ERROR", f"{where} is not trade_no^amount^reason"
        trade_no, amount, reason = fields
        if not is_valid_trade_no(trade_no):
            return "DETAIL_DATA_FORMAT_ERROR", f"{where} has a malformed trade_no"
        if trade_no in seen:
            return "DUBL_TRADE_NO_IN_SAME_BATCH", f"{where} repeats trade {trade_no}"
        seen.add(trade_no)
        try:
            parse_amount(amount)
        except DetailDataError:
            return "DETAIL_DATA_FORMAT_ERROR", f"{where} has a malformed amount"
        if not _AMOUNT_2DP.fullmatch(amount):
            return "DETAIL_DATA_FORMAT_ERROR", f"{where} amount lacks two decimals"
        try:
            size = len(reason.encode(codec))
        except UnicodeEncodeError:
            return "DETAIL_DATA_FORMAT_ERROR", f"{where} reason cannot be encoded"
        if size > MAX_REASON_BYTES:
            return "SINGLE_DETAIL_DATA_EXCEED_LIMIT", f"{where} reason is {size} bytes"
    return "DETAIL_DATA_FORMAT_ERROR", "detail_data breaks a format rule"
