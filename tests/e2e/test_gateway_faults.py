"""The pipeline under a misbehaving gateway: every refund still ends exactly once."""

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

FAULTS = {
    # Rates high enough and counts bounded so that each fires a few times even when
    # the ~30 batches of this load give few opportunities.
    "hang": {"rate": 0.25, "count": 3, "seconds": 2.5, "accept": True},
    "reset_after_accept": {"rate": 0.25, "count": 3},
    "http_5xx": {"rate": 0.25, "count": 3, "status": 502, "accept": True},
    "lock_error": {"rate": 0.25, "count": 3},
    "slow": {"rate": 0.1, "seconds": 0.3},
    "notify_lost": {"rate": 0.2},
    "notify_duplicate": {"rate": 0.3},
    "notify_reorder": {"rate": 0.2},
    "notify_bad_sign": {"rate": 0.2},
    "item_failure": {"rate": 0.02, "code": "SELLER_BALANCE_NOT_ENOUGH"},
    "seed": 11,
}


def test_every_refund_ends_once_under_gateway_faults(tmp_path: Path) -> None:
    config = StackConfig(
        workdir=tmp_path / "stack",
        batch_max_items=40,
        batch_max_wait=0.2,
        sandbox_args=["--faults", json.dumps(FAULTS)],
        extra_env={"GATEWAY_READ_TIMEOUT": "1.0", "GATEWAY_CONNECT_TIMEOUT": "1.0"},
    )
    rng = random.Random(4)
    requests = [
        refund_request(f"fault-{i}", trade(50_000 + rng.randrange(400)), "3.00")
        for i in range(1200)
    ]
    with Stack(config) as stack:
        stack.publish(requests)
        expected = {r["refund_id"] for r in requests}
        completed = stack.collect(expected, timeout=240)
        missing = expected - set(completed)
        assert not missing, f"{len(missing)} never completed, e.g. {sorted(missing)[:5]}"
        for refund_id in expected:
            assert {e["event_id"] for e in completed[refund_id]} == {completed_event_id(refund_id)}
        statuses = Counter(completed[r][0]["status"] for r in expected)
        assert set(statuses) <= {"succeeded", "failed"}
        assert statuses["succeeded"] > 1000

        sandbox = SandboxClient(stack.sandbox_url)
        summary = sandbox.summary()
        assert summary["double_executed"] == []
        # The faults really happened.
        fired = sandbox.faults()["fired_total"]
        for name in ("hang", "reset_after_accept", "http_5xx", "lock_error", "notify_duplicate"):
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
        # Forged notifications changed nothing: failed items stayed failed.
        failed_codes = {
            completed[r][0]["code"] for r in expected if completed[r][0]["status"] == "failed"
        }
        assert failed_codes <= {"SELLER_BALANCE_NOT_ENOUGH"}
        assert stack.query("SELECT count(*) FROM outbox") == [(0,)]
