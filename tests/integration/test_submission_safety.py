"""Answers that must leave a batch maybe-sent, or must not count against its refunds.

Real PostgreSQL ledger and sandbox gateway throughout. Where the sandbox cannot give
the answer (SYSTEM_ERROR), a scripted `Submitter` stands in for the HTTP client and
returns the parsed answer the client would have returned.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pytest

from tests.support.ledger import delivery, handle_deliveries, request, trade
from tests.support.submission import Env, make_batches, now_utc, open_env
from worker.adapters.postgres import ledger
from worker.adapters.postgres.pool import Database
from worker.domain.policy import DATE_REBATCH_DELAY_SECONDS
from worker.mapi import RefundItem, SyncResponse, SyncStatus, build_refund_request
from worker.services.packing import pack_pending
from worker.services.submission import submit_batch

pytestmark = pytest.mark.integration


@pytest.fixture
def env(db: Database) -> Iterator[Env]:
    with open_env(db) as opened:
        yield opened


@dataclass
class ScriptedGateway:
    """A submission port that returns the scripted answers in order, one per call."""

    answers: list[SyncResponse]
    sent: list[dict[str, str]] = field(default_factory=list)

    def submit(self, params: dict[str, str]) -> SyncResponse:
        self.sent.append(dict(params))
        return self.answers.pop(0)


def refused(code: str) -> SyncResponse:
    return SyncResponse(SyncStatus.REFUSED, code, f"is_success F, error {code}")


def tomorrow() -> datetime:
    return now_utc() + timedelta(days=1)


def submit_via(
    env: Env, gateway: ScriptedGateway, batch_no: str, clock: Callable[[], datetime] = now_utc
) -> str:
    result = submit_batch(
        env.db, lambda _m: gateway, env.merchants, batch_no, clock=clock, lease_seconds=0.5
    )
    return result.status


def batch_count(env: Env) -> int:
    with env.db.transaction() as conn:
        row = conn.execute("SELECT count(*) FROM batches").fetchone()
    assert row is not None
    return int(row[0])


def test_system_error_then_day_rollover_waits_instead_of_renumbering(env: Env) -> None:
    (batch_no,) = make_batches(env, 3)
    gateway = ScriptedGateway([refused("SYSTEM_ERROR")])

    assert submit_via(env, gateway, batch_no) == "unknown"
    batch = env.batch(batch_no)
    assert (batch.state, batch.maybe_sent) == ("unknown", True)
    assert batch.next_attempt_at is not None  # retried under the same batch_no today

    # Beijing midnight passes before the retry: the batch may be at the gateway, so it
    # waits for its notification instead of being renumbered.
    assert submit_via(env, gateway, batch_no, clock=tomorrow) == "awaiting_notification"
    batch = env.batch(batch_no)
    assert (batch.state, batch.maybe_sent, batch.next_attempt_at) == ("unknown", True, None)
    assert env.refund_states() == {"batched": 3}
    assert batch_count(env) == 1
    assert len(gateway.sent) == 1


def test_system_error_then_a_definite_refusal_never_splits(env: Env) -> None:
    (batch_no,) = make_batches(env, 4)
    gateway = ScriptedGateway([refused("SYSTEM_ERROR"), refused("TRADE_STATUS_ERROR")])

    assert submit_via(env, gateway, batch_no) == "unknown"
    assert submit_via(env, gateway, batch_no) == "awaiting_notification"
    batch = env.batch(batch_no)
    assert (batch.state, batch.maybe_sent) == ("unknown", True)
    assert env.refund_states() == {"batched": 4}
    assert batch_count(env) == 1
    assert [p["batch_no"] for p in gateway.sent] == [batch_no, batch_no]


def batch_row(env: Env, batch_no: str) -> tuple[object, ...]:
    with env.db.transaction() as conn:
        row = conn.execute(
            "SELECT state, maybe_sent, next_attempt_at, operator_flag, last_code"
            " FROM batches WHERE batch_no = %s",
            (batch_no,),
        ).fetchone()
    assert row is not None
    return tuple(row)


def test_duplicate_batch_no_on_a_first_attempt_waits_for_a_query(env: Env) -> None:
    # The gateway already has this batch_no with these very items (a replayed POST, or a
    # database restored from before the submission): the worker's first attempt is
    # answered DUPLICATE_BATCH_NO. Renumbering would pay every refund twice.
    (batch_no,) = make_batches(env, 3)
    with env.db.transaction() as conn:
        items = ledger.batch_items(conn, batch_no)
    replayed = build_refund_request(
        env.merchant,
        batch_no=batch_no,
        items=[RefundItem(i.trade_no, i.amount, i.reason_sent) for i in items],
        now=now_utc(),
    )
    assert env.gateway.submit(replayed).status is SyncStatus.ACCEPTED

    assert env.submit(batch_no).status == "awaiting_query"
    assert batch_row(env, batch_no) == (
        "unknown",
        True,
        None,
        "duplicate_batch_no_unverified",
        "DUPLICATE_BATCH_NO",
    )
    assert env.refund_states() == {"batched": 3}  # not released, not renumbered
    with env.db.transaction() as conn:
        assert conn.execute("SELECT count(*) FROM batches").fetchone() == (1,)
    # It was ours: the gateway's notification completes the refunds, each paid once.
    env.deliver_notifications(1)
    assert env.refund_states() == {"succeeded": 3}
    assert env.sandbox.client.summary()["double_executed"] == []


def repack(env: Env) -> list[str]:
    return pack_pending(
        env.db, max_items=1000, max_wait=0, merchants=env.merchants, clock=now_utc, force=True
    )


def refund_rows(env: Env) -> list[tuple[object, ...]]:
    with env.db.transaction() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                "SELECT state, code, batch_attempts FROM refunds ORDER BY refund_id"
            ).fetchall()
        ]


def test_a_refund_refused_for_its_date_many_times_is_never_failed(env: Env) -> None:
    # The gateway's Beijing day is already tomorrow: every batch numbered today is
    # answered REFUND_DATE_ERROR, however often the refund is re-batched.
    env.sandbox.client.set_clock_offset(86400)
    assert handle_deliveries(env.db, [delivery(request("r-date", trade(7), "1.00"))]) == []
    for _ in range(8):
        batches = repack(env)
        if not batches:
            break
        (batch_no,) = batches
        result = env.submit(batch_no)
        if result.status == "retry":
            # Its delay over, the batch is renumbered: back to pending, not sent again.
            sent = len(env.sandbox.client.ledger()["refused"])
            assert env.submit(batch_no).status == "abandoned"
            assert len(env.sandbox.client.ledger()["refused"]) == sent
    assert refund_rows(env) == [("pending", None, 0)]

    # The clocks agree again: the refund goes out and succeeds.
    env.sandbox.client.set_clock_offset(0)
    (batch_no,) = repack(env)
    assert env.submit(batch_no).status == "accepted"
    env.deliver_notifications(1)
    assert env.refund_states() == {"succeeded": 1}


def test_a_batch_refused_for_its_date_is_not_split_and_waits_before_renumbering(
    env: Env,
) -> None:
    env.sandbox.client.set_clock_offset(86400)
    (batch_no,) = make_batches(env, 4)
    started = now_utc()

    result = env.submit(batch_no)
    assert (result.status, result.follow_ups) == ("retry", [])
    batch = env.batch(batch_no)
    assert (batch.state, batch.maybe_sent) == ("retry", False)
    assert batch.next_attempt_at is not None
    delay = (batch.next_attempt_at - started).total_seconds()
    assert DATE_REBATCH_DELAY_SECONDS - 5 <= delay <= DATE_REBATCH_DELAY_SECONDS + 5
    # The refunds stay in the batch for the delay, and the attempt is not counted.
    assert [(state, attempts) for state, _, attempts in refund_rows(env)] == [("batched", 0)] * 4
    assert batch_count(env) == 1

    assert env.submit(batch_no).status == "abandoned"
    assert env.refund_states() == {"pending": 4}
    (renumbered,) = repack(env)
    assert renumbered != batch_no
    assert [(state, attempts) for state, _, attempts in refund_rows(env)] == [("batched", 1)] * 4


def last_attempt_at(env: Env, batch_no: str) -> datetime:
    with env.db.transaction() as conn:
        row = conn.execute(
            "SELECT last_attempt_at FROM batches WHERE batch_no = %s", (batch_no,)
        ).fetchone()
    assert row is not None and row[0] is not None
    value: datetime = row[0]
    return value


def test_every_attempt_records_when_the_batch_was_last_sent(env: Env) -> None:
    # Reconciliation's waits (and the release rule's day) count from the last attempt.
    (batch_no,) = make_batches(env, 2)
    before = now_utc()
    gateway = ScriptedGateway([refused("SYSTEM_ERROR"), refused("SYSTEM_ERROR")])
    assert submit_via(env, gateway, batch_no) == "unknown"
    first = last_attempt_at(env, batch_no)
    assert first >= before - timedelta(seconds=1)
    assert submit_via(env, gateway, batch_no) == "unknown"
    assert last_attempt_at(env, batch_no) > first
