"""The whole pipeline as separate processes: bus in, sandbox gateway, bus out."""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devtools.devstack import Stack, StackConfig
from sandbox.client import SandboxClient
from tests.support.events import refund_request, trade
from worker.adapters.rabbitmq import BusConnection
from worker.contracts.events import completed_event_id, validate_refund_completed

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("stack")
    with Stack(StackConfig(workdir=workdir, batch_max_wait=0.3)) as running:
        yield running


def assert_exactly_once(stack: Stack, expected: set[str]) -> dict[str, dict[str, Any]]:
    completed = stack.collect(expected, timeout=180)
    missing = expected - set(completed)
    assert not missing, f"{len(missing)} refunds never completed, e.g. {sorted(missing)[:5]}"
    events = {}
    for refund_id in expected:
        ids = {e["event_id"] for e in completed[refund_id]}
        assert ids == {completed_event_id(refund_id)}
        events[refund_id] = completed[refund_id][0]
    return events


def test_one_request_becomes_one_completed_event(stack: Stack) -> None:
    request = refund_request(
        "e2e-one", trade(1), "12.30", reason="size does not fit", metadata={"ticket": 7}
    )
    stack.publish([request])
    event = assert_exactly_once(stack, {"e2e-one"})["e2e-one"]
    validate_refund_completed(event)
    assert event["status"] == "succeeded"
    assert event["code"] == "SUCCESS"
    assert event["amount"] == "12.30"
    assert event["trade_no"] == trade(1)
    assert event["order_id"] == "order-e2e-one"
    assert event["metadata"] == {"ticket": 7}
    assert event["batch_no"]
    executed = SandboxClient(stack.sandbox_url).ledger(trade_no=trade(1))["trades"][trade(1)]
    assert [e["amount"] for e in executed["executions"]] == ["12.30"]


def test_five_thousand_refunds_complete_once_and_are_paid_once(stack: Stack) -> None:
    rng = random.Random(5000)
    requests = []
    for i in range(5000):
        trade_no = trade(10_000 + rng.randrange(1500))
        requests.append(
            refund_request(f"e2e-bulk-{i}", trade_no, f"{rng.randint(1, 9999) / 100:.2f}")
        )
    # Redeliveries from the order system: the same requests again.
    stack.publish(requests + requests[:300])
    expected = {r["refund_id"] for r in requests}
    events = assert_exactly_once(stack, expected)
    assert Counter(e["status"] for e in events.values()) == {"succeeded": 5000}

    sandbox = SandboxClient(stack.sandbox_url)
    summary = sandbox.summary()
    assert summary["double_executed"] == []
    assert summary["over_refunded"] == []
    per_trade = Counter(r["trade_no"] for r in requests)
    trades = sandbox.ledger()["trades"]
    for trade_no, count in per_trade.items():
        assert len(trades[trade_no]["executions"]) == count, trade_no

    # Nothing left behind: outbox drained, queues empty, every batch closed.
    assert stack.query("SELECT count(*) FROM outbox") == [(0,)]
    assert stack.query("SELECT count(*) FROM refunds WHERE state NOT IN ('succeeded')") == [(0,)]
    assert stack.query("SELECT DISTINCT state FROM batches") == [("completed",)]
    with BusConnection(stack.config.amqp_url) as bus:
        assert bus.message_count(stack.topology.intake_queue) == 0


def test_bad_input_is_dead_lettered_with_reasons(stack: Stack) -> None:
    good = refund_request("e2e-good", trade(2), "1.00")
    stack.publish(
        [
            good,
            dict(good, amount="2.00"),  # conflicting duplicate
            b"\x00\x01 not json",
            json.dumps({"refund_id": "x"}).encode(),
            refund_request("e2e-bad-amount", trade(3), "1.001"),
        ]
    )
    assert_exactly_once(stack, {"e2e-good"})
    dead = stack.dead_letters()
    reasons = Counter(str(d.headers["x-refund-dead-letter-reason"]) for d in dead)
    assert reasons == {"conflicting_duplicate": 1, "invalid_json": 1, "schema_violation": 2}
    assert all(d.headers.get("x-refund-dead-letter-detail") for d in dead)


def test_logs_tell_one_refunds_story_and_hold_no_secret(stack: Stack) -> None:
    lines = stack.log_lines()
    story = [line["event"] for line in lines if line.get("refund_id") == "e2e-one"]
    for step in ("refund.received", "refund.batched", "refund.completed"):
        assert step in story, story
    assert story.index("refund.received") < story.index("refund.completed")
    raw = "".join(p.read_text(errors="replace") for p in Path(stack.logs).glob("*.log"))
    assert stack.md5_key not in raw
    assert "PRIVATE KEY" not in raw
    for line in lines:
        for key in ("sign", "md5_key", "private_key", "key"):
            assert line.get(key) in (None, "[redacted]"), (key, line.get("event"))
    assert not [line for line in lines if line.get("event") == "unparsed"][:1]
