"""End-to-end fixtures: the whole stack as processes (see devtools.devstack)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any


def trade(n: int) -> str:
    return f"2026112233{n:014d}"


def refund_request(refund_id: str, trade_no: str, amount: str, **extra: Any) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "refund_id": refund_id,
        "trade_no": trade_no,
        "amount": amount,
        "order_id": f"order-{refund_id}",
        **extra,
    }


def workdir(tmp_path: Path) -> Path:
    return tmp_path / "stack"
