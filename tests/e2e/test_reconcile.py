"""The pipeline converges on what the gateway did, even when the gateway departs from the ideal.

Against a gateway that writes every legal result shape, never notifies some of the
batches it accepts, and resets some connections after accepting, every refund
completes exactly once (reconciliation by `refund_fastpay_query` settles the silent
batches), nothing is paid twice and each refund has one event identity.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pytest

from devtools.devstack import Stack, StackConfig
from sandbox.client import SandboxClient
from tests.support.events import refund_request, trade
from worker.contracts.events import completed_event_id

pytestmark = pytest.mark.e2e

ODD_CODE = "REFUND_CHARGE_ERROR_X"
FAULTS = {
    "result_shapes": {"rate": 1.0, "odd_codes": [ODD_CODE]},
    # High rates, bounded counts: each fires early whatever the number of batches.
    "notify_never": {"rate": 0.3, "count": 6},
    "reset_after_accept": {"rate": 0.3, "count": 6},
    "item_failure": {"rate": 0.01, "code": "SELLER_BALANCE_NOT_ENOUGH"},
    "seed": 5,
}


def test_every_refund_completes_once_with_silent_batches_and_every_result_shape(
    tmp_path: Path,
) -> None:
    config = StackConfig(
        workdir=tmp_path / "stack",
        batch_max_items=25,
        batch_max_wait=0.2,
        sandbox_args=["--faults", json.dumps(FAULTS)],
        extra_env={
            "GATEWAY_READ_TIMEOUT": "1.0",
            "GATEWAY_CONNECT_TIMEOUT": "1.0",
            "RECONCILE_AFTER_SECONDS": "5",
        },
    )
    rng = random.Random(9)
    requests = [
        refund_request(f"truth-{i}", trade(70_000 + rng.randrange(300)), "2.00")
        for i in range(1000)
    ]
    with Stack(config) as stack:
        stack.publish(requests)
        expected = {r["refund_id"] for r in requests}
        completed = stack.collect(expected, timeout=240)
        missing = expected - set(completed)
        assert not missing, f"{len(missing)} never completed, e.g. {sorted(missing)[:5]}"
        for refund_id in expected:
            assert {e["event_id"] for e in completed[refund_id]} == {completed_event_id(refund_id)}

        sandbox = SandboxClient(stack.sandbox_url)
        assert sandbox.summary()["double_executed"] == []
        fired = sandbox.faults()["fired_total"]
        for name in ("result_shapes", "notify_never", "reset_after_accept"):
            assert fired.get(name, 0) >= 1, fired

        # What the gateway executed is exactly what the worker reports as succeeded.
        succeeded = Counter(
            completed[r][0]["trade_no"]
            for r in expected
            if completed[r][0]["status"] == "succeeded"
        )
        trades = sandbox.ledger()["trades"]
        executed = {t: len(v["executions"]) for t, v in trades.items() if v["executions"]}
        assert executed == dict(succeeded)
        codes = Counter(completed[r][0]["code"] for r in expected)
        assert set(codes) <= {"SUCCESS", "SELLER_BALANCE_NOT_ENOUGH", ODD_CODE}

        # The silent batches were settled by the query, the others by their notification.
        sources = dict(stack.query("SELECT result_source, count(*) FROM refunds GROUP BY 1"))
        assert sources.get("query", 0) >= 1, sources
        assert sources.get("notify", 0) >= 1, sources
        assert stack.query("SELECT count(*) FROM notifications WHERE outcome = 'malformed'") == [
            (0,)
        ]
        assert stack.query("SELECT count(*) FROM outbox") == [(0,)]
