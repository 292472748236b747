"""Answers that must leave a batch maybe-sent (real PostgreSQL ledger, sandbox gateway)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.test_submission import Env, make_batches, now_utc, open_env
from worker import ledger
from worker.db import Database
from worker.mapi import RefundItem, SyncStatus, build_refund_request

pytestmark = pytest.mark.integration


@pytest.fixture
def env(db: Database) -> Iterator[Env]:
    with open_env(db) as opened:
        yield opened


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
