"""What the sandbox writes on the wire, as pure functions (the gateway's side of the protocol).

* `sync_answer`: the synchronous XML answer, byte for byte what the mapi
  gateway sends (`<?xml version="1.0" encoding="GBK"?>` then
  `<alipay><is_success>T</is_success></alipay>`, or `F` with `<error>CODE</error>`).
* `format_result_details`: `trade_no^amount^CODE` items joined with `#`, the
  plain form Alipay reports for plain requests; `success_num` counts SUCCESS.
  Items the gateway
  skipped (`SKIPPED`, the 100th refund of a trade in the `skip` refund-limit
  mode) are neither refunded nor reported, so they are left out.
  (`sandbox.shapes` writes the grammar's other legal shapes.)
* `is_acknowledgement`: whether the merchant's answer to a notification
  acknowledges it: status 200 and the body `success` once surrounding
  whitespace is stripped (Alipay's own Java demo answers `println("success")`,
  i.e. `success\r\n`); the letter case must be exactly `success`.
* `RESEND_GAPS` / `resend_delay`: the resend schedule of `batch_refund_notify`
  (up to 8 deliveries within about 25 hours, the gaps after the first try
  being 4m, 10m, 10m, 1h, 2h, 6h, 15h), scaled by a time factor.
* `new_notify_id`: an unguessable notify id shaped like Alipay's
  (32 hex digits and a few lower-case letters, e.g. `86742cf7...d873cmva`).
* `notify_time`: `yyyy-MM-dd HH:mm:ss`, Beijing time.
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Final
from xml.sax.saxutils import escape

from worker.mapi import refund_date

__all__ = [
    "MAX_DELIVERIES",
    "NOTIFY_TYPE",
    "RESEND_GAPS",
    "SKIPPED",
    "SUCCESS",
    "format_result_details",
    "is_acknowledgement",
    "new_notify_id",
    "notify_time",
    "resend_delay",
    "success_num",
    "sync_answer",
]

SUCCESS: Final = "SUCCESS"
# The books' marker of an item left out entirely (never a code on the wire).
SKIPPED: Final = "skipped"
ACK: Final = b"success"
NOTIFY_TYPE: Final = "batch_refund_notify"

# Seconds between deliveries: the n-th gap follows the n-th delivery.
RESEND_GAPS: Final = (240.0, 600.0, 600.0, 3600.0, 7200.0, 21600.0, 54000.0)
MAX_DELIVERIES: Final = len(RESEND_GAPS) + 1

_XML_HEAD: Final = b'<?xml version="1.0" encoding="GBK"?>\n'
_ACCEPTED: Final = _XML_HEAD + b"<alipay><is_success>T</is_success></alipay>"
_LETTERS: Final = string.ascii_lowercase


def sync_answer(error: str | None) -> bytes:
    """The synchronous answer: `T` when `error` is None, else `F` with `<error>error</error>`."""
    if error is None:
        return _ACCEPTED
    body = f"<alipay><is_success>F</is_success><error>{escape(error)}</error></alipay>"
    return _XML_HEAD + body.encode("gbk")


def format_result_details(results: Sequence[tuple[str, Decimal, str]]) -> str:
    """`result_details` for (trade_no, amount, code) triples, in request order.

    Amounts must be Decimals quantized to cents (as `parse_amount` returns
    them); they are written with `str`, which then gives exactly two decimals.
    """
    return "#".join(
        f"{trade_no}^{amount}^{code}" for trade_no, amount, code in results if code != SKIPPED
    )


def is_acknowledgement(status: int | None, body: bytes) -> bool:
    """Whether a merchant's answer acknowledges a notification (see the module docstring)."""
    return status == 200 and body.strip() == ACK


def success_num(results: Sequence[tuple[str, Decimal, str]]) -> int:
    """How many items say SUCCESS (the `success_num` field)."""
    return sum(1 for _, _, code in results if code == SUCCESS)


def resend_delay(deliveries_made: int, time_factor: float) -> float | None:
    """Seconds to wait before the next delivery, or None when Alipay would give up.

    `deliveries_made` counts deliveries already attempted (>= 1).
    """
    if deliveries_made < 1:
        raise ValueError("deliveries_made counts attempts already made and starts at 1")
    if deliveries_made > len(RESEND_GAPS):
        return None
    return RESEND_GAPS[deliveries_made - 1] * time_factor


def new_notify_id() -> str:
    """A fresh notify id: 32 random hex digits and 2 random letters (from `secrets`)."""
    return secrets.token_hex(16) + "".join(secrets.choice(_LETTERS) for _ in range(2))


def notify_time(now: datetime) -> str:
    """`notify_time` for a delivery at `now`: `yyyy-MM-dd HH:mm:ss`, Beijing."""
    return refund_date(now)
