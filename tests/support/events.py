"""Refund requests for the end-to-end tests and the fault suite."""

from __future__ import annotations

import uuid
from typing import Any


def trade(n: int) -> str:
    """A trade number of the end-to-end tests' own range."""
    return f"2026112233{n:014d}"


def refund_request(refund_id: str, trade_no: str, amount: str, **extra: Any) -> dict[str, Any]:
    """A `refund.requested` event as the order system publishes it."""
    return {
        "event_id": str(uuid.uuid4()),
        "refund_id": refund_id,
        "trade_no": trade_no,
        "amount": amount,
        "order_id": f"order-{refund_id}",
        **extra,
    }
