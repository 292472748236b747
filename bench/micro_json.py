"""Why the ledger's statement parameters and the event bodies use `compact` (orjson).

An intake micro-batch (250 refunds as `insert_refunds` sends them), a 1000-item batch's
outcomes (`apply_results`) and 1000 `refund.completed` bodies are serialized with
`worker.contracts.json_text.compact` and with the standard library's `json.dumps`
(compact separators, UTF-8 kept), as the statements did before. Both must read back
as the same values; the ratio is what `compact` saves on each.

    .venv/bin/python bench/micro_json.py
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from worker.contracts.json_text import compact


def plain(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def best_of(call: Callable[[], Any], repeat: int = 5, number: int = 100) -> float:
    """Best seconds per call over `repeat` runs of `number` calls."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        for _ in range(number):
            call()
        best = min(best, (time.perf_counter() - started) / number)
    return best


def _refund(n: int) -> dict[str, Any]:
    return {
        "refund_id": f"r-{n}",
        "event_id": f"6f1c2b2e-1d7e-4a57-9d0f-2b6c2c1f{n:04d}",
        "trade_no": f"2026300000{n:014d}",
        "amount": "12.34",
        "reason": "商品退货 return",
        "trade_amount": None,
        "order_id": f"order-{n}",
        "metadata": {"shop": "上海", "lines": [1, 2]},
        "requested_at": "2026-12-02T20:00:00.123+00:00",
        "content_hash": "a" * 64,
        "state": "pending",
        "code": None,
        "partner": "2088101122136241",
        "channel": "batch",
        "out_trade_no": None,
        "auth_no": None,
        "out_request_no": None,
    }


def main() -> None:
    payloads = {
        "intake micro-batch (250 refunds)": [_refund(n) for n in range(250)],
        "batch outcomes (1000 items)": {f"r-{n}": ["succeeded", "SUCCESS"] for n in range(1000)},
        "1000 refund.completed bodies": [
            dict(_refund(n), status="succeeded", batch_no="20261202001") for n in range(1000)
        ],
    }
    for name, value in payloads.items():
        assert json.loads(compact(value)) == json.loads(plain(value))
        if isinstance(value, list) and "bodies" in name:
            ours = best_of(lambda v=value: [compact(e) for e in v])
            theirs = best_of(lambda v=value: [plain(e) for e in v])
        else:
            ours = best_of(lambda v=value: compact(v))
            theirs = best_of(lambda v=value: plain(v))
        print(
            f"{name:34} compact {ours * 1e6:8.1f} us   json.dumps {theirs * 1e6:8.1f} us"
            f"   ratio {theirs / ours:4.1f}x"
        )


if __name__ == "__main__":
    main()
