"""Submission against the sandbox gateway over HTTP and a real PostgreSQL ledger.

Each rule of what happens after an attempt has a test here: unknown
outcomes retried under the same batch_no (and DUPLICATE_BATCH_NO then meaning
accepted), definite refusals split or failed, configuration errors halting,
lock errors backing off, and the Beijing-day rule.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from tests.support.ledger import trade
from tests.support.net import free_port
from tests.support.submission import Env, make_batches, now_utc, open_env
from worker.adapters.gateway.client import GatewayClient
from worker.adapters.postgres.pool import Database
from worker.mapi import BEIJING, Merchant
from worker.services.packing import pack_pending
from worker.services.submission import submit_batch
from worker.services.sweeper import resume_submission

pytestmark = pytest.mark.integration


@pytest.fixture
def env(db: Database) -> Iterator[Env]:
    with open_env(db) as opened:
        yield opened


def executions(env: Env) -> int:
    trades = env.sandbox.client.ledger()["trades"]
    return sum(len(t["executions"]) for t in trades.values())


def test_accepted_batch_then_notification_completes_every_refund(env: Env) -> None:
    (batch_no,) = make_batches(env, 5)
    assert env.submit(batch_no).status == "accepted"
    assert env.batch(batch_no).state == "accepted"
    assert env.refund_states() == {"submitted": 5}
    assert env.deliver_notifications(1) == ["applied"]
    assert env.refund_states() == {"succeeded": 5}
    assert env.batch(batch_no).state == "completed"
    # Submitting again changes nothing and sends nothing.
    assert env.submit(batch_no).status == "completed"
    assert env.sandbox.client.summary()["double_executed"] == []


@pytest.mark.parametrize(
    "fault",
    [
        {"hang": {"count": 1, "seconds": 3, "accept": True}},
        {"reset_after_accept": {"count": 1}},
        {"http_5xx": {"count": 1, "status": 502, "accept": True}},
        {"http_5xx": {"count": 1, "status": 503, "accept": False}},
    ],
    ids=["hang-after-accept", "reset-after-accept", "502-after-accept", "503-before-accept"],
)
def test_unknown_outcome_is_retried_under_the_same_batch_no(
    env: Env, fault: dict[str, Any]
) -> None:
    (batch_no,) = make_batches(env, 4)
    env.sandbox.client.set_faults(fault)
    first = env.submit(batch_no)
    assert first.status == "unknown"
    batch = env.batch(batch_no)
    assert batch.maybe_sent and batch.attempts == 1
    assert env.refund_states() == {"batched": 4}

    second = env.submit(batch_no)
    assert second.status == "accepted"
    assert env.batch(batch_no).attempts == 2
    env.deliver_notifications(1)
    assert env.refund_states() == {"succeeded": 4}
    summary = env.sandbox.client.summary()
    assert summary["double_executed"] == []
    assert executions(env) == 4
    # One batch_no only: nothing was renumbered.
    with env.db.transaction() as conn:
        assert conn.execute("SELECT count(*) FROM batches").fetchone() == (1,)


def test_gateway_not_listening_is_not_sent_and_retried(env: Env) -> None:
    (batch_no,) = make_batches(env, 2)
    closed = GatewayClient(
        f"http://127.0.0.1:{free_port()}/gateway.do",
        charset="utf-8",
        partner=env.sandbox.partner,
        connect_timeout=1.0,
        read_timeout=1.0,
    )
    result = submit_batch(
        env.db, lambda _m: closed, env.merchants, batch_no, clock=now_utc, lease_seconds=0.5
    )
    assert result.status == "retry"
    assert not env.batch(batch_no).maybe_sent
    assert env.submit(batch_no).status == "accepted"


def test_lock_error_retries_later_with_the_same_batch_no(env: Env) -> None:
    (batch_no,) = make_batches(env, 3)
    env.sandbox.client.set_faults({"lock_error": {"count": 1}})
    assert env.submit(batch_no).status == "retry"
    batch = env.batch(batch_no)
    assert batch.next_attempt_at is not None and not batch.maybe_sent
    assert env.submit(batch_no).status == "accepted"


def test_configuration_error_halts_submission_and_keeps_the_batches(env: Env) -> None:
    (first,) = make_batches(env, 3, prefix="a")
    (second,) = make_batches(env, 3, prefix="b")
    wrong = Merchant(
        partner=env.merchant.partner,
        charset="utf-8",
        sign_type="MD5",
        md5_key="not-the-key",
        notify_url=env.merchant.notify_url,
    )
    assert env.submit(first, merchant=wrong).status == "held"
    with env.db.transaction() as conn:
        assert conn.execute(
            "SELECT last_code, operator_flag FROM batches WHERE batch_no = %s", (first,)
        ).fetchone() == ("ILLEGAL_SIGN", "configuration_error")
    # Every other batch is held too, without being sent: the queue is not burnt through.
    sent_before = len(env.sandbox.client.ledger()["refused"])
    assert env.submit(second).status == "held"
    assert len(env.sandbox.client.ledger()["refused"]) == sent_before
    assert env.refund_states() == {"batched": 6}

    assert sorted(resume_submission(env.db)) == sorted([first, second])
    assert env.submit(first).status == "accepted"
    assert env.submit(second).status == "accepted"


def test_item_refused_synchronously_is_isolated_by_splitting(env: Env) -> None:
    bad = trade(5)
    env.sandbox.client.set_faults(
        {"sync_item_failure": {"code": "TRADE_STATUS_ERROR", "trade_nos": [bad]}}
    )
    (batch_no,) = make_batches(env, 16)
    pending = [batch_no]
    statuses: list[str] = []
    rounds = 0
    while pending and rounds < 40:
        rounds += 1
        result = env.submit(pending.pop(0))
        statuses.append(result.status)
        pending.extend(result.follow_ups)
    assert not pending
    assert statuses.count("refused") == 5  # 16 -> 8 -> 4 -> 2 -> 1 items, each refused once
    with env.db.transaction() as conn:
        rows = conn.execute(
            "SELECT trade_no, state, code FROM refunds WHERE state = 'failed'"
        ).fetchall()
    assert rows == [(bad, "failed", "TRADE_STATUS_ERROR")]
    assert env.refund_states() == {"failed": 1, "submitted": 15}


def test_unknown_outcome_at_day_end_waits_for_the_notification(env: Env) -> None:
    (batch_no,) = make_batches(env, 3)
    env.sandbox.client.set_faults({"hang": {"count": 1, "seconds": 3, "accept": True}})
    assert env.submit(batch_no).status == "unknown"

    def tomorrow() -> datetime:
        return now_utc() + timedelta(days=1)

    assert env.submit(batch_no, clock=tomorrow).status == "awaiting_notification"
    batch = env.batch(batch_no)
    assert batch.state == "unknown" and batch.next_attempt_at is None
    assert env.refund_states() == {"batched": 3}  # not renumbered, not released
    # The gateway did take it: its notification completes the refunds.
    env.deliver_notifications(1)
    assert env.refund_states() == {"succeeded": 3}
    with env.db.transaction() as conn:
        assert conn.execute("SELECT count(*) FROM batches").fetchone() == (1,)


def test_never_sent_batch_at_day_end_is_renumbered(env: Env) -> None:
    (batch_no,) = make_batches(env, 2)

    def tomorrow() -> datetime:
        return now_utc() + timedelta(days=1)

    assert env.submit(batch_no, clock=tomorrow).status == "abandoned"
    assert env.refund_states() == {"pending": 2}
    env.sandbox.client.set_clock_offset(86400)
    (renumbered,) = pack_pending(
        env.db, max_items=1000, max_wait=0, merchants=env.merchants, clock=tomorrow, force=True
    )
    assert renumbered != batch_no
    assert renumbered[:8] == tomorrow().astimezone(BEIJING).strftime("%Y%m%d")
    assert env.submit(renumbered, clock=tomorrow).status == "accepted"
