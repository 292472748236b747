"""`refund-worker demo` as a newcomer runs it: exit 0, a summary, logs that tell a story."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e


def test_demo_completes_every_refund_and_its_logs_hold_no_secret(tmp_path: Path) -> None:
    key = secrets.token_hex(16)
    env = dict(os.environ, ALIPAY_MD5_KEY=key)
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "worker.entrypoints.cli",
            "demo",
            "--refunds",
            "60",
            "--workdir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert re.search(r"refunds completed: (\d+)/\1", run.stdout), run.stdout
    assert "succeeded  SUCCESS" in run.stdout
    assert "conflicting_duplicate 1" in run.stdout
    # The OpenAPI channels, by channel in the summary, and paid once each.
    rows = {
        tuple(m.group(1, 2, 3)): int(m.group(4))
        for m in re.finditer(r"^(\w+) +(\w+) +(\S+) +(\d+)$", run.stdout, re.MULTILINE)
    }
    assert rows[("trade", "succeeded", "SUCCESS")] == 3, run.stdout
    assert rows[("trade", "failed", "ACQ.TRADE_STATUS_ERROR")] == 1, run.stdout
    assert rows[("coupon", "succeeded", "SUCCESS")] == 3, run.stdout
    assert rows[("batch", "failed", "TRADE_HAS_CLOSED")] == 1, run.stdout
    assert "OpenAPI refunds made: 6; OpenAPI double executions: []" in run.stdout

    (logs,) = tmp_path.glob("*/logs")
    raw = "".join(p.read_text(encoding="utf-8") for p in sorted(logs.glob("*.log")))
    assert key not in raw
    assert "PRIVATE KEY" not in raw
    lines = [json.loads(line) for line in raw.splitlines() if line.startswith("{")]
    story = [line for line in lines if line.get("refund_id") == "demo-separators"]
    events = [line["event"] for line in story]
    assert events[0] == "refund.received"
    assert "refund.batched" in events
    assert events[-1] == "refund.completed"
    batch_no = next(line["batch_no"] for line in story if line["event"] == "refund.batched")
    batch_events = {line["event"] for line in lines if line.get("batch_no") == batch_no}
    assert {
        "batch.created",
        "batch.submitting",
        "batch.submitted",
        "notify.applied",
    } <= batch_events
    for refund_id in ("demo-trade-2", "demo-coupon-1"):
        steps = {line["event"] for line in lines if line.get("refund_id") == refund_id}
        assert {"refund.received", "openapi.call", "openapi.settled", "refund.completed"} <= steps
    for line in lines:
        assert line.get("sign") in (None, "[redacted]")
