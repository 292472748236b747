"""`detail_data`: the items of one batch refund request.

Format: items joined with `#`, each item `trade_no^amount^reason`.

Rules the gateway enforces, checked here before anything is sent:

* 1 to 1000 items (`batch_num` is the item count; BATCH_NUM_EXCEED_LIMIT);
* a `trade_no` at most once per batch (DUBL_TRADE_NO_IN_SAME_BATCH);
* `trade_no` is Alipay's trade number: 16 to 64 ASCII digits;
* `amount` > 0, at most 100000000.00, written with exactly two decimals;
* `reason` at most 256 bytes in the request charset and free of the
  separators `^ | $ #` (they would change the structure of `detail_data`).

The worker only sends the plain item form; the royalty (`|`) and sub-trade
(`$$`) forms exist in results only (see `worker.mapi.notify`).

`sanitize_reason` makes any free text fit the reason rules (the ledger keeps
the original text): each separator becomes its full-width twin (`^`->`＾`,
`|`->`｜`, `$`->`＄`, `#`->`＃`, all encodable in GBK and UTF-8 and still readable),
control and invisible format characters (newlines, tabs, zero-width and
bidi marks; Unicode categories Cc, Cf, Zl, Zp) become a space, characters the
charset cannot encode (emoji in GBK, lone surrogates) become `?`, and the
result is cut on a character boundary to at most 256 bytes in the charset.

Speed: the gateway side (the sandbox) decodes up to 1000 items per request.
`decode_detail_data` (and `decode_detail_rows`, which gives plain tuples)
first tries `_decode_fast`, which checks the rules over the whole text with
C-level operations (one regex pass, one `isprintable`, one encode, a set for
duplicates, each distinct amount parsed once) and builds the items only when
every rule holds; anything else goes through the item-by-item reference
(`_decode_checked`), which names the first broken rule. Both accept exactly
the same texts with the same items (the unit tests compare them on random input).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from worker.domain.errors import DetailDataError
from worker.mapi.amounts import check_refund_amount, format_amount, parse_amount
from worker.mapi.charsets import codec_for, fits

ITEM_SEPARATOR = "#"
FIELD_SEPARATOR = "^"
RESERVED_CHARACTERS = "^|$#"
MAX_ITEMS = 1000
MAX_REASON_BYTES = 256

_FULL_WIDTH = {"^": "\uff3e", "|": "\uff5c", "$": "\uff04", "#": "\uff03"}
_BLANKED_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp"})
_UNENCODABLE = "?"
_TRADE_NO = re.compile(r"[0-9]{16,64}", re.ASCII)
_RESERVED = re.compile(r"[\^|$#]")
# One well-formed plain item, starting at the start of the text or after a `#`
# and ending at a `#` or the end: the groups are trade_no, amount, reason.
_PLAIN_ITEM = re.compile(
    r"(?<![^#])([0-9]{16,64})\^([0-9]+(?:\.[0-9]{1,2})?)\^([^#^|$]*)(?=#|\Z)", re.ASCII
)
# Most bytes one character takes in each codec: reasons up to 256 // width
# characters cannot exceed 256 bytes.
_MAX_CHAR_BYTES = {"utf-8": 4, "gbk": 2}


# (trade_no, amount, reason): one item as `decode_detail_rows` returns it.
DetailRow = tuple[str, Decimal, str]


@dataclass(frozen=True)
class RefundItem:
    """One refund of one trade inside a batch: Alipay trade number, amount in CNY, reason."""

    trade_no: str
    amount: Decimal
    reason: str = ""


def is_valid_trade_no(trade_no: object) -> bool:
    """True for an Alipay trade number: 16 to 64 ASCII digits."""
    return isinstance(trade_no, str) and _TRADE_NO.fullmatch(trade_no) is not None


def sanitize_reason(text: str, charset: str) -> str:
    """Make free text a valid `reason` for `charset` (rules in the module docstring)."""
    codec = _codec(charset)
    out: list[str] = []
    size = 0
    # Every output character takes at least one byte, so later input cannot fit.
    for ch in text[:MAX_REASON_BYTES]:
        if ch in _FULL_WIDTH:
            ch = _FULL_WIDTH[ch]
        elif unicodedata.category(ch) in _BLANKED_CATEGORIES:
            ch = " "
        elif not fits(ch, codec):
            ch = _UNENCODABLE
        width = len(ch.encode(codec))
        if size + width > MAX_REASON_BYTES:
            break
        out.append(ch)
        size += width
    return "".join(out)


def reason_problem(reason: str, codec: str) -> str | None:
    """Why `reason` is not acceptable in `detail_data` for `codec`, or None when it is."""
    if not isinstance(reason, str):
        return f"reason must be a string, got {type(reason).__name__}"
    if _RESERVED.search(reason):
        reserved = sorted({ch for ch in reason if ch in RESERVED_CHARACTERS})
        return f"reason contains the separator(s) {' '.join(reserved)}"
    if _has_blanked(reason):
        return "reason contains control or format characters"
    if not fits(reason, codec):
        return f"reason has characters {codec} cannot encode"
    size = len(reason.encode(codec))
    if size > MAX_REASON_BYTES:
        return f"reason is {size} bytes in {codec}, more than {MAX_REASON_BYTES}"
    return None


def encode_detail_data(items: Sequence[RefundItem], *, charset: str = "utf-8") -> str:
    """Write `detail_data` for `items`; raises DetailDataError naming the first broken rule."""
    codec = _codec(charset)
    _check_count(len(items))
    seen: set[str] = set()
    parts: list[str] = []
    for index, item in enumerate(items):
        where = f"item {index + 1}"
        if not is_valid_trade_no(item.trade_no):
            raise DetailDataError(
                f"{where}: trade_no {str(item.trade_no)[:70]!r} is not 16-64 digits"
            )
        where = f"{where} (trade {item.trade_no})"
        if item.trade_no in seen:
            raise DetailDataError(f"{where}: trade_no appears twice in one batch")
        seen.add(item.trade_no)
        try:
            amount = format_amount(check_refund_amount(item.amount))
        except DetailDataError as exc:
            raise DetailDataError(f"{where}: {exc}") from None
        problem = reason_problem(item.reason, codec)
        if problem:
            raise DetailDataError(f"{where}: {problem}")
        parts.append(FIELD_SEPARATOR.join((item.trade_no, amount, item.reason)))
    return ITEM_SEPARATOR.join(parts)


def decode_detail_data(text: str, *, charset: str = "utf-8") -> list[RefundItem]:
    """Read `detail_data` back into items, enforcing the same rules as `encode_detail_data`.

    `charset` is the request's `_input_charset`, used for the 256-byte reason
    limit. Only the plain `trade_no^amount^reason` form is accepted.
    """
    codec, count = _prepare(text, charset)
    rows = _decode_fast(text, codec, count)
    if rows is not None:
        return [RefundItem(trade_no, amount, reason) for trade_no, amount, reason in rows]
    return _decode_checked(text, codec)


def decode_detail_rows(text: str, *, charset: str = "utf-8") -> list[DetailRow]:
    """`decode_detail_data` as plain `(trade_no, amount, reason)` tuples.

    The same rules, items and errors; it only skips building a RefundItem per
    item, which is a good part of the cost of reading a 1000-item batch (the
    gateway side reads one per request).
    """
    codec, count = _prepare(text, charset)
    rows = _decode_fast(text, codec, count)
    if rows is not None:
        return rows
    return [(item.trade_no, item.amount, item.reason) for item in _decode_checked(text, codec)]


def _prepare(text: str, charset: str) -> tuple[str, int]:
    """(codec, item count) after the checks both decoders start with."""
    codec = _codec(charset)
    if not isinstance(text, str) or not text:
        raise DetailDataError("detail_data is empty")
    count = text.count(ITEM_SEPARATOR) + 1
    _check_count(count)
    return codec, count


def _decode_fast(text: str, codec: str, count: int) -> list[DetailRow] | None:
    """The rows of a `detail_data` that keeps every rule, or None (rules in the module docstring).

    None means "not sure": the reference `_decode_checked` then decides. Each
    check covers what `_decode_checked` checks item by item:

    * every one of the `count` items matches `_PLAIN_ITEM` (so three fields,
      16-64 digit trade_no, amount shaped like `parse_amount` wants it, no
      separator in a reason);
    * no trade_no twice;
    * each distinct amount passes `parse_amount` (> 0, at most 1e8);
    * no control or format character anywhere (trade numbers, amounts and
      separators are printable ASCII, so the whole text stands for its reasons);
    * the whole text encodes in the codec (it is stateless: so does every reason;
      printable text always encodes in UTF-8);
    * no reason longer than 256 bytes (only reasons with more than 256 // the
      codec's widest character are encoded to count).
    """
    found: list[tuple[str, str, str]] = _PLAIN_ITEM.findall(text)
    if len(found) != count:
        return None
    if len({trade_no for trade_no, _, _ in found}) != count:
        return None
    amounts: dict[str, Decimal] = {}
    for amount_text in {amount_text for _, amount_text, _ in found}:
        try:
            amounts[amount_text] = parse_amount(amount_text)
        except DetailDataError:
            return None
    printable = text.isprintable()
    if not printable and _has_blanked(text):
        return None
    # Printable text holds no lone surrogate (category Cs), and UTF-8 encodes
    # every other code point: only GBK, or text that is not printable, is tried.
    if codec != "utf-8" or not printable:
        try:
            text.encode(codec)
        except UnicodeEncodeError:
            return None
    longest = MAX_REASON_BYTES // _MAX_CHAR_BYTES[codec]
    if max(len(reason) for _, _, reason in found) > longest and any(
        len(reason.encode(codec)) > MAX_REASON_BYTES
        for _, _, reason in found
        if len(reason) > longest
    ):
        return None
    return [(trade_no, amounts[amount], reason) for trade_no, amount, reason in found]


def _decode_checked(text: str, codec: str) -> list[RefundItem]:
    """Item by item: the items, or DetailDataError naming the first broken rule."""
    items: list[RefundItem] = []
    seen: set[str] = set()
    for index, raw in enumerate(text.split(ITEM_SEPARATOR)):
        where = f"item {index + 1}"
        if "|" in raw or "$" in raw:
            raise DetailDataError(
                f"{where}: only the plain trade_no^amount^reason form is accepted"
                " (no royalty '|' or sub-trade '$' parts)"
            )
        fields = raw.split(FIELD_SEPARATOR)
        if len(fields) != 3:
            raise DetailDataError(
                f"{where}: expected trade_no^amount^reason, got {len(fields)} field(s)"
            )
        trade_no, amount_text, reason = fields
        if not is_valid_trade_no(trade_no):
            raise DetailDataError(f"{where}: trade_no {trade_no[:70]!r} is not 16-64 digits")
        where = f"{where} (trade {trade_no})"
        if trade_no in seen:
            raise DetailDataError(f"{where}: trade_no appears twice in one batch")
        seen.add(trade_no)
        try:
            amount = parse_amount(amount_text)
        except DetailDataError as exc:
            raise DetailDataError(f"{where}: {exc}") from None
        problem = reason_problem(reason, codec)
        if problem:
            raise DetailDataError(f"{where}: {problem}")
        items.append(RefundItem(trade_no=trade_no, amount=amount, reason=reason))
    return items


def _has_blanked(text: str) -> bool:
    """Whether `text` holds a control or format character (categories Cc, Cf, Zl, Zp).

    Those are all non-printable for `str.isprintable` (a C-level scan), so
    only text that is not printable is looked at, one distinct character at a time.
    """
    if text.isprintable():
        return False
    return any(unicodedata.category(ch) in _BLANKED_CATEGORIES for ch in set(text))


def _check_count(count: int) -> None:
    if count < 1:
        raise DetailDataError("a batch needs at least one item")
    if count > MAX_ITEMS:
        raise DetailDataError(f"a batch holds at most {MAX_ITEMS} items, got {count}")


def _codec(charset: str) -> str:
    codec = codec_for(charset)
    if codec is None:
        raise DetailDataError(f"unsupported charset {str(charset)[:20]!r}: use utf-8 or gbk")
    return codec
