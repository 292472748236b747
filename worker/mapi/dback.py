"""The bank-card return notification (`dback_notify_url`), read as far as it is known.

When a refund goes back to a bank card, Alipay may post a second notification
about the card leg to `dback_notify_url`. It is poorly documented; the one public
implementation reads `trade_no`, `refund_batch_no` (or `batch_no`), `refund_id`,
`card_no`, `bank_name` and `status` (`S` succeeded, `F` failed, `I` in progress).
See docs/mapi.md, "Bank-card return notification".

`read_dback` never raises: every field is optional, `status` is kept verbatim
(trimmed), and the card number is reduced to its last four digits at once, so
the full number never reaches the ledger or a log line.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["DBACK_STATUSES", "DbackResult", "mask_card_no", "read_dback"]

DBACK_STATUSES = {"S": "succeeded", "F": "failed", "I": "in_progress"}
_MAX_FIELD = 128


@dataclass(frozen=True, slots=True)
class DbackResult:
    trade_no: str | None
    batch_no: str | None
    refund_id: str | None
    card_last4: str | None
    bank_name: str | None
    status: str | None

    @property
    def status_meaning(self) -> str:
        if self.status is None:
            return "unknown"
        return DBACK_STATUSES.get(self.status.upper(), "unknown")


def mask_card_no(card_no: str | None) -> str | None:
    """The last four digits of a card number (`None` when it has no digit)."""
    if not card_no:
        return None
    digits = [c for c in card_no if c.isascii() and c.isdigit()]
    return "".join(digits[-4:]) or None


def _field(form: Mapping[str, str], *names: str) -> str | None:
    for name in names:
        value = form.get(name)
        if isinstance(value, str) and value.strip():
            return value.strip()[:_MAX_FIELD]
    return None


def read_dback(form: Mapping[str, str]) -> DbackResult:
    """What a bank-card return notification says, field by field."""
    return DbackResult(
        trade_no=_field(form, "trade_no"),
        batch_no=_field(form, "refund_batch_no", "batch_no"),
        refund_id=_field(form, "refund_id"),
        card_last4=mask_card_no(form.get("card_no")),
        bank_name=_field(form, "bank_name"),
        status=_field(form, "status"),
    )
