"""`batch_refund_notify`: Alipay's asynchronous batch results.

Form fields: `notify_time` (`yyyy-MM-dd HH:mm:ss`, Beijing), `notify_type`
(`batch_refund_notify`), `notify_id`, `sign_type`, `sign`, `batch_no`,
`success_num` (how many trade parts say SUCCESS), `result_details` and,
when the request used `use_freeze_amount`, `unfreezed_details`.

`result_details` holds one entry per refunded trade, joined with `#`. The
official tables and public integrations (Alipay's own sample
notify pages and the C#/Java parsers collected in public repositories)
describe one entry as::

    trade part [ "$" fee part ] { "|" royalty part } { "$$" sub-trade part }

    trade part      trade_no^amount^CODE
    fee part        account^user_id^amount^CODE          (fee refunded to the merchant)
    royalty part    out_account^out_user_id^in_account^in_user_id^amount^CODE
                    (the royalty receiver gives money back to the original payer)
    sub-trade part  refund_amount^refundable_amount^CODE

for example `2013091142096412^0.01^SUCCESS$bycoa@10106266.com^2088101964737404^0.00^SUCCESS`
or (one line) `2010123016346858^0.02^SUCCESS|a@x.com^2088102210397302^b@y.com^
2088101568345155^0.01^SUCCESS$$10.00^10.00^SUCCESS`.
CODE is SUCCESS or an error code (see `worker.mapi.codes`). Amounts in
results may have fewer than two decimals (`80`, `0`). A trade's refund
succeeded when its trade part says SUCCESS, whatever the other parts say.

`unfreezed_details` is described by the same public sources as
`unfreeze_no^freeze_no^amount^trade_no^processed_at^status^code`; entries
are read as `#`-separated. Its format is not in the official tables, so it
is parsed on a best-effort basis: `unfreezed` is None when the field is
absent or not in that shape, and the raw text is always kept.

`success_num` is kept as sent and not trusted: the items are what counts
(the official sample itself says `success_num=2` next to a single item), and
`counts_agree` tells the caller whether the two match, so it can log it.

Every malformed input raises NotifyFormatError naming the field or item;
nothing else is raised.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from worker.domain.errors import NotifyFormatError
from worker.mapi.amounts import parse_reported_amount
from worker.mapi.dates import BEIJING, REFUND_DATE_FORMAT, is_valid_batch_no
from worker.mapi.detail import is_valid_trade_no
from worker.mapi.parts import (
    SUCCESS,
    FeePart,
    ResultOutcome,
    RoyaltyPart,
    SubTradePart,
    fee_part,
    result_amount,
    result_code,
    royalty_part,
    split_entry,
    split_fields,
    sub_trade_part,
)

__all__ = [
    "NOTIFY_TYPE",
    "SUCCESS",
    "BatchRefundNotify",
    "FeePart",
    "ResultItem",
    "RoyaltyPart",
    "SubTradePart",
    "UnfreezeResult",
    "is_valid_notify_id",
    "parse_notify",
    "parse_result_details",
]

NOTIFY_TYPE = "batch_refund_notify"
_TIMESTAMP = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}", re.ASCII)
_COUNT = re.compile(r"[0-9]{1,6}", re.ASCII)
_NOTIFY_ID = re.compile(r"[\x21-\x7e]{1,128}", re.ASCII)
_REQUIRED = (
    "notify_id",
    "notify_time",
    "notify_type",
    "sign_type",
    "batch_no",
    "success_num",
    "result_details",
)


@dataclass(frozen=True)
class ResultItem(ResultOutcome):
    """The outcome of one trade's refund in a batch; `raw` is the entry as received."""

    trade_no: str
    amount: Decimal
    code: str
    fee: FeePart | None = None
    royalties: tuple[RoyaltyPart, ...] = ()
    sub_trades: tuple[SubTradePart, ...] = ()
    raw: str = ""


@dataclass(frozen=True)
class UnfreezeResult:
    """One entry of `unfreezed_details` (best-effort format, see module docstring)."""

    unfreeze_no: str
    freeze_no: str
    amount: Decimal
    trade_no: str
    processed_at: str
    status: str
    code: str


@dataclass(frozen=True)
class BatchRefundNotify:
    """A parsed `batch_refund_notify` (signature and notify_id checks are done elsewhere)."""

    notify_id: str
    notify_time: str
    notify_type: str
    batch_no: str
    success_num: int
    items: tuple[ResultItem, ...]
    unfreezed_details: str | None
    sign_type: str
    unfreezed: tuple[UnfreezeResult, ...] | None = None

    @property
    def notified_at(self) -> datetime:
        """`notify_time` as an aware datetime in Beijing time."""
        return datetime.strptime(self.notify_time, REFUND_DATE_FORMAT).replace(tzinfo=BEIJING)

    @property
    def succeeded_count(self) -> int:
        """How many items say SUCCESS (what `success_num` should be)."""
        return sum(1 for item in self.items if item.succeeded)

    @property
    def counts_agree(self) -> bool:
        """False when `success_num` disagrees with the items; worth a warning, items win."""
        return self.success_num == self.succeeded_count


def is_valid_notify_id(notify_id: object) -> bool:
    """True for 1-128 printable ASCII characters without spaces."""
    return isinstance(notify_id, str) and _NOTIFY_ID.fullmatch(notify_id) is not None


def parse_result_details(text: str) -> list[ResultItem]:
    """Parse `result_details` into one ResultItem per trade (format in the module docstring)."""
    if not isinstance(text, str) or not text:
        raise NotifyFormatError("result_details is empty")
    items: list[ResultItem] = []
    seen: set[str] = set()
    for index, raw in enumerate(text.split("#")):
        item = _parse_item(raw, f"result item {index + 1}")
        if item.trade_no in seen:
            raise NotifyFormatError(
                f"result item {index + 1}: trade {item.trade_no} appears twice in result_details"
            )
        seen.add(item.trade_no)
        items.append(item)
    return items


def parse_notify(form: Mapping[str, str]) -> BatchRefundNotify:
    """Parse a decoded `batch_refund_notify` form; NotifyFormatError for anything malformed."""
    if not isinstance(form, Mapping):
        raise NotifyFormatError("notification must be a mapping of form fields")
    fields: dict[str, str] = {}
    for name in _REQUIRED:
        value = form.get(name)
        if value is None or value == "":
            raise NotifyFormatError(f"notification has no {name}")
        if not isinstance(value, str):
            raise NotifyFormatError(f"notification field {name} is not text")
        fields[name] = value
    if fields["notify_type"] != NOTIFY_TYPE:
        raise NotifyFormatError(
            f"notify_type is {fields['notify_type'][:40]!r}, expected {NOTIFY_TYPE!r}"
        )
    if not is_valid_notify_id(fields["notify_id"]):
        raise NotifyFormatError("notify_id is not 1-128 printable ASCII characters")
    _check_timestamp(fields["notify_time"])
    if not is_valid_batch_no(fields["batch_no"]):
        raise NotifyFormatError(f"batch_no {fields['batch_no'][:40]!r} is not a valid batch number")
    if not _COUNT.fullmatch(fields["success_num"]):
        raise NotifyFormatError(f"success_num {fields['success_num'][:20]!r} is not a count")
    success_num = int(fields["success_num"])
    items = tuple(parse_result_details(fields["result_details"]))
    unfreezed_raw = form.get("unfreezed_details")
    if unfreezed_raw is not None and not isinstance(unfreezed_raw, str):
        raise NotifyFormatError("notification field unfreezed_details is not text")
    unfreezed_text = unfreezed_raw or None
    return BatchRefundNotify(
        notify_id=fields["notify_id"],
        notify_time=fields["notify_time"],
        notify_type=fields["notify_type"],
        batch_no=fields["batch_no"],
        success_num=success_num,
        items=items,
        unfreezed_details=unfreezed_text,
        sign_type=fields["sign_type"],
        unfreezed=_parse_unfreezed(unfreezed_text) if unfreezed_text else None,
    )


def _check_timestamp(text: str) -> None:
    if _TIMESTAMP.fullmatch(text):
        try:
            datetime.strptime(text, REFUND_DATE_FORMAT)
            return
        except ValueError:
            pass
    raise NotifyFormatError(f"notify_time {text[:30]!r} is not yyyy-MM-dd HH:mm:ss")


def _parse_item(raw: str, where: str) -> ResultItem:
    if not raw:
        raise NotifyFormatError(f"{where} is empty")
    trade_text, fee_text, royalty_texts, sub_texts = split_entry(raw)
    trade_no, amount, code = split_fields(trade_text, 3, f"{where} trade part")
    if not is_valid_trade_no(trade_no):
        raise NotifyFormatError(f"{where}: trade_no {trade_no[:70]!r} is not 16-64 digits")
    where = f"{where} (trade {trade_no})"
    fee = fee_part(fee_text, where) if fee_text is not None else None
    royalties = tuple(royalty_part(text, where) for text in royalty_texts)
    sub_trades = tuple(sub_trade_part(text, where) for text in sub_texts)
    return ResultItem(
        trade_no=trade_no,
        amount=result_amount(amount, where),
        code=result_code(code, where),
        fee=fee,
        royalties=royalties,
        sub_trades=sub_trades,
        raw=raw,
    )


def _parse_unfreezed(text: str) -> tuple[UnfreezeResult, ...] | None:
    entries: list[UnfreezeResult] = []
    for raw in text.split("#"):
        fields = raw.split("^")
        if len(fields) != 7:
            return None
        unfreeze_no, freeze_no, amount_text, trade_no, processed_at, status, code = fields
        amount = parse_reported_amount(amount_text)
        if amount is None:
            return None
        entries.append(
            UnfreezeResult(unfreeze_no, freeze_no, amount, trade_no, processed_at, status, code)
        )
    return tuple(entries)
