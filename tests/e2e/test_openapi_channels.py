"""The three channels at once through the whole stack, with both gateways misbehaving.

2,000 refunds, batch (mapi), trade (`alipay.trade.refund`) and coupon
(`alipay.fund.coupon.order.refund`) interleaved, several per trade and per red envelope,
every role its own process. The OpenAPI gateway resets connections after making the
refund and answers `20000` after making it; the mapi gateway resets after accepting a
batch. Every refund still ends with exactly one `refund.completed` of its channel, and
the sandbox's books show each refund paid once and no trade or envelope over-refunded.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pytest

from devtools.devstack import Stack, StackConfig
from sandbox.client import SandboxClient
from tests.support.mixed import create_books, expected_openapi, mixed_load, paid_openapi
from worker.contracts.events import completed_event_id, validate_refund_completed
from worker.openapi import out_request_no

pytestmark = pytest.mark.e2e

FAULTS = {
    # Bounded counts with high rates: each fires early whatever the run's timing.
    "reset_after_accept": {"rate": 0.5, "count": 2},
    "openapi": {
        "reset_after_accept": {"rate": 0.05, "count": 25},
        "unknown_error": {"rate": 0.05, "count": 25, "accept": True},
    },
    "seed": 23,
}


def test_mixed_channels_complete_once_and_are_paid_once_under_faults(tmp_path: Path) -> None:
    load = mixed_load(random.Random(2000), refunds=2000, tag=31, prefix="mix")
    config = StackConfig(
        workdir=tmp_path / "stack",
        batch_max_items=200,
        batch_max_wait=0.3,
        sandbox_args=["--faults", json.dumps(FAULTS)],
        extra_env={"GATEWAY_READ_TIMEOUT": "1.5", "GATEWAY_CONNECT_TIMEOUT": "1.0"},
    )
    with Stack(config) as stack:
        sandbox = SandboxClient(stack.sandbox_url)
        create_books(sandbox, load)
        stack.publish(load.requests + load.requests[:100])  # and some re-sent by the order system
        expected = set(load.channel)
        completed = stack.collect(expected, timeout=120)
        missing = expected - set(completed)
        assert not missing, f"{len(missing)} never completed, e.g. {sorted(missing)[:5]}"

        channels: Counter[str] = Counter()
        for refund_id in expected:
            events = completed[refund_id]
            assert {e["event_id"] for e in events} == {completed_event_id(refund_id)}
            event = events[0]
            validate_refund_completed(event)
            assert (event["status"], event["code"]) == ("succeeded", "SUCCESS"), event
            channel = load.channel[refund_id]
            channels[event.get("channel", "batch")] += 1
            if channel == "batch":
                assert "channel" not in event and event["batch_no"], event
                continue
            assert event["channel"] == channel and event["batch_no"] is None, event
            assert event["out_request_no"] == out_request_no(refund_id)
            if channel == "trade":
                assert event["gmt_refund_pay"] and (event.get("trade_no") or event["out_trade_no"])
            else:
                assert event["operation_id"] and event["auth_no"], event
        assert channels == Counter(load.channel.values())

        summary = sandbox.summary()
        assert summary["double_executed"] == [] and summary["over_refunded"] == []
        assert summary["openapi"]["double_executed"] == []
        assert summary["openapi"]["over_refunded"] == []
        # The books hold exactly the refunds reported succeeded, each once.
        openapi_ids = [r for r, c in load.channel.items() if c != "batch"]
        numbers = {r: out_request_no(r) for r in openapi_ids}
        assert paid_openapi(sandbox.openapi_ledger()) == expected_openapi(
            load, openapi_ids, numbers
        )
        per_trade = Counter(r["trade_no"] for r in load.of("batch"))
        trades = sandbox.ledger()["trades"]
        assert {t: len(v["executions"]) for t, v in trades.items() if v["executions"]} == dict(
            per_trade
        )
        # The faults really happened, and were answered by sending the same request again.
        fired = sandbox.faults()["fired_total"]
        for name in ("reset_after_accept", "openapi.reset_after_accept", "openapi.unknown_error"):
            assert fired.get(name, 0) >= 1, fired
        resent = stack.query(
            "SELECT refund_id FROM openapi_calls WHERE kind = 'send'"
            " GROUP BY refund_id HAVING count(*) > 1"
        )
        assert resent, "no OpenAPI refund was sent twice"
        assert stack.query("SELECT count(*) FROM outbox") == [(0,)]
