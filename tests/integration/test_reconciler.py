"""Reconciliation by `refund_fastpay_query` against the sandbox over HTTP and a real ledger."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal

import pytest

from tests.support.ledger import delivery, handle_deliveries, outbox_events, request, rows
from tests.support.submission import Env, now_utc, open_env
from worker.adapters.gateway.query import interpret_answer
from worker.adapters.postgres import ledger
from worker.adapters.postgres.pool import Database
from worker.services.notifications import process_notification
from worker.services.operators import ResolveRefused, resolve_batch
from worker.services.reconciler import claim_due

pytestmark = pytest.mark.integration


@pytest.fixture
def env(db: Database) -> Iterator[Env]:
    with open_env(db) as opened:
        yield opened


def _wait_executed(env: Env, batch_no: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = env.query.query_refunds(batch_no=batch_no)
        if found.answer == "found":
            return
        time.sleep(0.05)
    raise AssertionError(f"the sandbox never executed {batch_no}")


def test_a_batch_never_notified_is_completed_from_the_query(env: Env) -> None:
    env.sandbox.client.set_faults({"notify_never": {}, "item_failure": {"count": 1}})
    batch_no = env.fresh_batch(5)
    assert env.submit(batch_no).status == "accepted"
    _wait_executed(env, batch_no)

    report = env.reconcile(batch_no)

    assert report.answer == "found"
    assert (report.state_before, report.state_after, report.completed) == (
        "accepted",
        "completed",
        5,
    )
    states = rows(env.db, "SELECT state, result_source, count(*) FROM refunds GROUP BY 1, 2")
    assert sorted(states) == [("failed", "query", 1), ("succeeded", "query", 4)]
    assert len(outbox_events(env.db)) == 5
    assert env.receiver.received == []  # the gateway really said nothing
    # Asking again changes nothing: one event identity per refund.
    again = env.reconcile(batch_no)
    assert again.completed == 0 and len(outbox_events(env.db)) == 5


def test_a_notification_after_the_query_changes_nothing(env: Env) -> None:
    batch_no = env.fresh_batch(3)
    assert env.submit(batch_no).status == "accepted"
    _wait_executed(env, batch_no)
    assert env.reconcile(batch_no).state_after == "completed"

    deadline = time.monotonic() + 10
    while not any(r.form for r in env.receiver.received) and time.monotonic() < deadline:
        time.sleep(0.05)
    (form,) = {r.form["notify_id"]: r.form for r in env.receiver.received if r.form}.values()
    assert process_notification(env.db, "batch_refund", form, now_utc()) == "applied"
    assert len(outbox_events(env.db)) == 3
    assert rows(env.db, "SELECT DISTINCT result_source FROM refunds") == [("query",)]


def test_due_batches_are_claimed_once_and_queried_on_a_growing_schedule(env: Env) -> None:
    env.sandbox.client.set_faults({"notify_never": {}})
    batch_no = env.fresh_batch(2)
    assert env.submit(batch_no).status == "accepted"
    assert claim_due(env.db, reconcile_after=3600) == []  # not old enough
    assert claim_due(env.db, reconcile_after=0) == [batch_no]
    assert claim_due(env.db, reconcile_after=0) == []  # claimed: another scheduler skips it


def test_the_query_answer_of_the_gateway_is_only_a_fact_when_it_parses() -> None:
    assert interpret_answer(b"<html>502 Bad Gateway</html>", "utf-8").answer == "no_answer"
    assert interpret_answer(b"", "utf-8").answer == "no_answer"
    assert interpret_answer(b"is_success=F&error_code=REFUND_NOT_EXIST", "utf-8").answer == (
        "not_found"
    )
    refused = interpret_answer(b"is_success=F&error_code=ILLEGAL_SIGN", "utf-8")
    assert (refused.answer, refused.error_code) == ("refused", "ILLEGAL_SIGN")
    shapes = interpret_answer(
        b"is_success=T&result_details=20261122001^2026112200000001^1.00^SUCCESS$"
        b"#20261122001^2026112200000002^1^ODD_CODE^true^S$$#",
        "utf-8",
    )
    assert shapes.answer == "found"
    assert [(i.trade_no, i.code) for i in shapes.items] == [
        ("2026112200000001", "SUCCESS"),
        ("2026112200000002", "ODD_CODE"),
    ]


def _unknown_batch(env: Env) -> str:
    """A batch whose one attempt may have reached the gateway, but did not."""
    env.sandbox.client.set_faults({"http_5xx": {"count": 1, "accept": False}})
    batch_no = env.fresh_batch(2, prefix="u")
    assert env.submit(batch_no).status == "unknown"
    env.sandbox.client.clear_faults()
    return batch_no


def test_a_batch_the_gateway_never_took_is_released_only_after_its_day_and_two_not_exist(
    env: Env,
) -> None:
    batch_no = _unknown_batch(env)
    with env.db.transaction() as conn:
        ledger.update_batch(conn, batch_no, next_attempt_at=None)
    # Same day: not_exist answers are recorded, nothing is released.
    first = env.reconcile(batch_no)
    assert (first.answer, first.state_after, first.released) == (
        "not_found:REFUND_NOT_EXIST",
        "unknown",
        0,
    )
    tomorrow = lambda: now_utc() + timedelta(days=1)  # noqa: E731
    # The day is over, but the last attempt is not long enough ago.
    early = env.reconcile(batch_no, clock=tomorrow, release_after=3 * 86400)
    assert (early.state_after, early.released) == ("unknown", 0)
    # Two REFUND_NOT_EXIST in a row, the day over, the release delay passed: released.
    second = env.reconcile(batch_no, clock=tomorrow)
    assert (second.state_after, second.released) == ("released", 2)
    assert rows(env.db, "SELECT state, batch_no, count(*) FROM refunds GROUP BY 1, 2") == [
        ("pending", None, 2)
    ]


def test_an_operator_cannot_release_a_batch_on_its_day_without_force(env: Env) -> None:
    batch_no = _unknown_batch(env)
    with pytest.raises(ResolveRefused, match=r"day .* is not over"):
        resolve_batch(
            env.db,
            lambda _p: env.query,
            batch_no,
            decision="not_accepted",
            operator="alice",
            reason="checked the console",
            force=False,
            clock=now_utc,
        )
    forced = resolve_batch(
        env.db,
        lambda _p: env.query,
        batch_no,
        decision="not_accepted",
        operator="alice",
        reason="checked the console",
        force=True,
        clock=now_utc,
    )
    assert (forced.state_after, forced.refunds, forced.forced) == ("released", 2, True)
    assert rows(
        env.db, "SELECT decision, operator, forced, query_answer FROM operator_decisions"
    ) == [("not_accepted", "alice", True, "not_found")]


def test_an_operator_release_after_the_day_needs_the_gateway_to_say_not_exist(env: Env) -> None:
    env.sandbox.client.set_faults({"notify_never": {}})
    batch_no = env.fresh_batch(2, prefix="a")
    assert env.submit(batch_no).status == "accepted"
    _wait_executed(env, batch_no)
    with pytest.raises(ResolveRefused, match="answer was found"):
        resolve_batch(
            env.db,
            lambda _p: env.query,
            batch_no,
            decision="not_accepted",
            operator="bob",
            reason="looks stuck",
            force=False,
            clock=lambda: now_utc() + timedelta(days=2),
        )
    assert rows(env.db, "SELECT count(*) FROM operator_decisions") == [(0,)]
    assert rows(env.db, "SELECT state FROM batches") == [("accepted",)]


def test_a_refund_the_gateway_skipped_at_the_99_refund_limit_fails_after_its_day(
    env: Env,
) -> None:
    """Refunds made elsewhere count: the gateway silently skips the 100th refund of a trade."""
    env.sandbox.client.set_refund_limit_mode("skip")
    batch_no = env.fresh_batch(2, prefix="k")
    full_trade, other_trade = (
        t for (t,) in rows(env.db, "SELECT trade_no FROM refunds ORDER BY refund_id")
    )
    env.sandbox.client.add_external_refunds(full_trade, 99, "0.10")
    assert env.submit(batch_no).status == "accepted"
    _wait_executed(env, batch_no)

    first = env.reconcile(batch_no)  # the batch shows only the other trade
    assert first.completed == 1
    assert rows(env.db, "SELECT refund_id, state FROM refunds ORDER BY 1") == [
        ("k-0", "submitted"),
        ("k-1", "succeeded"),
    ]
    assert rows(
        env.db, "SELECT count(*) FROM trade_gateway_refunds WHERE trade_no = %s", full_trade
    ) == [(99,)]
    tomorrow = lambda: now_utc() + timedelta(days=1)  # noqa: E731
    env.reconcile(batch_no, clock=tomorrow)
    last = env.reconcile(batch_no, clock=tomorrow)
    assert last.state_after == "completed"
    assert rows(env.db, "SELECT refund_id, state, code FROM refunds ORDER BY 1") == [
        ("k-0", "failed", "REFUND_COUNT_EXCEEDED"),
        ("k-1", "succeeded", "SUCCESS"),
    ]
    assert len(outbox_events(env.db)) == 2
    assert other_trade != full_trade


def test_refunds_the_gateway_reported_elsewhere_count_at_intake(env: Env) -> None:
    """After the reconciler learnt of 99 refunds made elsewhere, a new one is rejected."""
    full_trade = "2026112288999999999999"
    with env.db.transaction() as conn:
        ledger.record_gateway_refunds(
            conn,
            [(full_trade, f"20261122EXT{n:06d}", Decimal("0.10"), "SUCCESS") for n in range(98)],
        )
    handle_deliveries(env.db, [delivery(request("x-1", full_trade, "1.00"))])
    handle_deliveries(env.db, [delivery(request("x-2", full_trade, "1.00"))])
    assert rows(env.db, "SELECT refund_id, state, code FROM refunds ORDER BY 1") == [
        ("x-1", "pending", None),
        ("x-2", "rejected", "REFUND_COUNT_EXCEEDED"),
    ]
