"""The console's read models against a real ledger built by the real services: refunds
taken in, packed, submitted to the sandbox gateway (or a scripted one), notified, queried,
resolved by an operator; then the overview, the search, the timelines and the series."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import psycopg
import pytest

from tests.support.db import fresh_database
from tests.support.ledger import (
    MERCHANTS,
    delivery,
    handle_deliveries,
    notify_form,
    request,
    trade,
)
from tests.support.submission import Env, now_utc, open_env
from worker.adapters.postgres import console_reads as reads
from worker.adapters.postgres import ledger
from worker.adapters.postgres.pool import Database, migrate, migration_files
from worker.mapi import SyncResponse, SyncStatus
from worker.services.notifications import process_notification
from worker.services.operators import resolve_batch
from worker.services.packing import pack_pending
from worker.services.reconciler import reconcile_batch
from worker.services.submission import submit_batch

pytestmark = pytest.mark.integration


@dataclass
class ScriptedGateway:
    """A submission port that returns the scripted answers in order."""

    answers: list[SyncResponse]
    sent: list[str] = field(default_factory=list)

    def submit(self, params: dict[str, str]) -> SyncResponse:
        self.sent.append(params["batch_no"])
        return self.answers.pop(0)


SYSTEM_ERROR = SyncResponse(SyncStatus.REFUSED, "SYSTEM_ERROR", "gateway refused the batch")


@dataclass
class World:
    env: Env
    done: str  # sandbox batch: attempt accepted, notified, completed
    retried: str  # SYSTEM_ERROR, then accepted by the sandbox, queried, notified
    resolved: str  # SYSTEM_ERROR, then an operator's decision: accepted, still open
    trades: dict[str, str]  # refund_id -> trade_no
    sign: str  # the signature of a notification the ledger stores


def _submit_scripted(env: Env, batch_no: str, answer: SyncResponse) -> str:
    gateway = ScriptedGateway([answer])
    return submit_batch(
        env.db, lambda _m: gateway, env.merchants, batch_no, clock=now_utc, lease_seconds=0.5
    ).status


class NoQueries:
    def __call__(self, partner: str) -> None:
        return None


@pytest.fixture
def world(db: Database) -> Iterator[World]:
    with open_env(db) as env:
        done = env.fresh_batch(2, prefix="done")
        assert env.submit(done).status == "accepted"
        assert env.deliver_notifications(1) == ["applied"]

        retried = env.fresh_batch(1, prefix="retried")
        assert _submit_scripted(env, retried, SYSTEM_ERROR) == "unknown"
        assert env.submit(retried).status == "accepted"
        env.deliver_notifications(2)
        # Asked after its notification completed it: the answer is recorded only.
        reconcile_batch(
            db,
            lambda _p: env.query,
            retried,
            clock=now_utc,
            release_after_seconds=0,
            purpose="operator",
        )

        resolved = env.fresh_batch(1, prefix="resolved")
        assert _submit_scripted(env, resolved, SYSTEM_ERROR) == "unknown"
        resolve_batch(
            db,
            NoQueries(),
            resolved,
            decision="accepted",
            operator="alice",
            reason="seen in the merchant console",
            force=False,
            clock=now_utc,
        )
        with db.transaction() as conn:
            conn.execute(
                "INSERT INTO audit_log (operator, action, target, outcome, detail)"
                " VALUES ('alice', 'resolve', %s, 'ok', 'as accepted'),"
                " ('bob', 'view', 'resolved-0', 'ok', NULL)",
                (resolved,),
            )
            trades = {
                str(r): str(t)
                for r, t in conn.execute("SELECT refund_id, trade_no FROM refunds").fetchall()
            }
        signs = [r.form["sign"] for r in env.receiver.received if r.form]
        yield World(env, done, retried, resolved, trades, signs[0])


def _texts(timeline: list[reads.TimelineEntry]) -> str:
    return "\n".join(f"{e.kind} {e.title} {e.detail}" for e in timeline)


def test_overview_counts_flags_halts_and_oldest_ages(world: World) -> None:
    db = world.env.db
    with db.transaction() as conn:
        conn.execute(
            "UPDATE refunds SET received_at = clock_timestamp() - interval '1 hour'"
            " WHERE refund_id = 'resolved-0'"
        )
        ledger.flag_batch(conn, world.resolved, "notification_overdue")
        ledger.flag_batch(conn, world.done, "items_missing_from_notification")  # closed: not shown
        ledger.set_submission_halt(conn, world.env.merchant.partner, "ILLEGAL_SIGN on batch x")
    form = {"notify_id": "n-lost", "batch_no": "20261122999999", "result_details": ""}
    assert process_notification(db, "batch_refund", form, now_utc()) == "unknown_batch"

    with db.transaction() as conn:
        view = reads.overview(conn)
    partner = world.env.merchant.partner
    refunds = {(c.merchant, c.state): c for c in view.refunds}
    assert {k: c.count for k, c in refunds.items()} == {
        (partner, "submitted"): 1,
        (partner, "succeeded"): 3,
    }
    age = refunds[(partner, "submitted")].oldest_seconds
    assert age is not None and 3600 <= age < 3600 + 600
    assert refunds[(partner, "succeeded")].oldest_seconds is None
    batches = {(c.merchant, c.state): c for c in view.batches}
    assert {k: c.count for k, c in batches.items()} == {
        (partner, "accepted"): 1,
        (partner, "completed"): 2,
    }
    accepted_age = batches[(partner, "accepted")].oldest_seconds
    assert accepted_age is not None and accepted_age >= 0
    assert batches[(partner, "completed")].oldest_seconds is None
    assert [(f.batch_no, f.flag, f.state) for f in view.flagged] == [
        (world.resolved, "notification_overdue", "accepted")
    ]
    assert [(h.merchant, h.reason) for h in view.halts] == [(partner, "ILLEGAL_SIGN on batch x")]
    assert [(c.merchant, c.state, c.count) for c in view.unapplied_notifications] == [
        ("", "unknown_batch", 1)
    ]
    assert view.outbox == 3  # one refund.completed per succeeded refund, not relayed


def test_find_names_each_kind_and_never_fails_on_odd_text(world: World) -> None:
    trade_no = world.trades["done-1"]
    with world.env.db.transaction() as conn:
        (hit,) = reads.find(conn, "  done-1 ")
        assert (hit.kind, hit.key) == ("refund", "done-1")
        assert "succeeded" in hit.summary and trade_no in hit.summary
        (hit,) = reads.find(conn, world.resolved)
        assert (hit.kind, hit.key) == ("batch", world.resolved)
        assert "accepted" in hit.summary and "1 items" in hit.summary
        (hit,) = reads.find(conn, trade_no)
        assert (hit.kind, hit.key, hit.summary) == (
            "trade",
            trade_no,
            "1 refunds here, 1.00 not failed",
        )
        for odd in (
            "",
            "   ",
            "x" * 5000,
            "a\x00b",
            "done-\n1",
            "'; DROP TABLE refunds; --",
            "%s",
            "%(x)s",
            "\ud800",
            "done-",
        ):
            assert reads.find(conn, odd) == []
        assert reads.refund_history(conn, "a\x00b") is None
        assert reads.batch_history(conn, "x" * 5000) is None
        assert reads.trade_history(conn, "nope") is None


def _in_order(timeline: list[reads.TimelineEntry]) -> None:
    assert [e.at for e in timeline] == sorted(e.at for e in timeline)


def test_refund_timeline_tells_the_whole_story_in_order(world: World) -> None:
    with world.env.db.transaction() as conn:
        history = reads.refund_history(conn, "retried-0")
    assert history is not None
    assert history.refund["state"] == "succeeded"
    assert history.refund["trade_no"] == world.trades["retried-0"]
    assert "content_hash" not in history.refund and "metadata" not in history.refund
    assert [(b.batch_no, b.state, b.attempts) for b in history.batches] == [
        (world.retried, "completed", 2)
    ]
    _in_order(history.timeline)
    kinds = [e.kind for e in history.timeline]
    assert kinds[0] == "received" and kinds[-1] == "query"
    attempts = [e for e in history.timeline if e.kind == "attempt"]
    assert [a.title for a in attempts] == [
        f"attempt 1 of batch {world.retried}: answered",
        f"attempt 2 of batch {world.retried}: answered",
    ]
    assert "SYSTEM_ERROR" in attempts[0].detail and "retry_same" in attempts[0].detail
    assert "accepted" in attempts[1].detail
    assert kinds.index("batch") < kinds.index("attempt")
    (note,) = [e for e in history.timeline if e.kind == "notification"]
    assert note.title == f"notification for batch {world.retried}: applied"
    assert "this trade: SUCCESS" in note.detail
    (query,) = [e for e in history.timeline if e.kind == "query"]
    assert query.title == f"query by batch {world.retried} (operator): found"
    assert "this trade: SUCCESS" in query.detail
    assert kinds.index("attempt") < kinds.index("notification")
    done = [e for e in history.timeline if e.kind == "completed"]
    assert [e.title for e in done] == ["refund retried-0 succeeded"]
    assert "from notify" in done[0].detail


def test_refund_timeline_shows_decisions_audit_and_card_returns(world: World) -> None:
    db = world.env.db
    form = {
        "notify_id": "d-1",
        "trade_no": world.trades["resolved-0"],
        "refund_batch_no": world.resolved,
        "status": "S",
        "bank_name": "ICBC",
        "card_no": "6222020012345678",
    }
    assert process_notification(db, "dback", form, now_utc()) == "stored"
    with db.transaction() as conn:
        history = reads.refund_history(conn, "resolved-0")
        batch = reads.batch_history(conn, world.resolved)
    assert history is not None and batch is not None
    _in_order(history.timeline)
    (decision,) = [e for e in history.timeline if e.kind == "decision"]
    assert decision.title == f"alice decided accepted on batch {world.resolved}"
    assert "seen in the merchant console" in decision.detail
    audit = [e.title for e in history.timeline if e.kind == "audit"]
    assert audit == [f"alice: resolve on {world.resolved} (ok)", "bob: view on resolved-0 (ok)"]
    (card,) = [e for e in history.timeline if e.kind == "bank_card_return"]
    assert card.title == "bank-card return: S" and "…5678" in card.detail
    assert "6222020012345678" not in _texts(history.timeline)
    assert not any(e.kind == "completed" for e in history.timeline)
    # The batch's own timeline: created, its attempt, the decision, the audit entry, the
    # bank-card notification; the refund's audit entry is not the batch's.
    _in_order(batch.timeline)
    assert batch.timeline[0].kind == "batch"
    assert {e.kind for e in batch.timeline} == {
        "batch",
        "attempt",
        "decision",
        "audit",
        "notification",
    }
    assert "bob" not in _texts(batch.timeline)


def test_batch_history_items_and_timeline_hide_the_stored_form(world: World) -> None:
    with world.env.db.transaction() as conn:
        history = reads.batch_history(conn, world.done)
        stored = conn.execute(
            "SELECT form FROM notifications WHERE batch_no = %s", (world.done,)
        ).fetchone()
    assert history is not None and stored is not None
    assert history.batch["batch_no"] == world.done and history.batch["state"] == "completed"
    assert [(i.refund_id, i.trade_no, i.amount, i.state, i.code) for i in history.items] == [
        ("done-0", world.trades["done-0"], Decimal("1.00"), "succeeded", "SUCCESS"),
        ("done-1", world.trades["done-1"], Decimal("1.00"), "succeeded", "SUCCESS"),
    ]
    assert history.items[0].reason_sent
    _in_order(history.timeline)
    kinds = [e.kind for e in history.timeline]
    assert kinds[0] == "batch" and history.timeline[0].title == "batch created"
    assert kinds.count("attempt") == 1 and kinds.count("notification") == 1
    assert history.timeline[-1].title == f"batch {world.done} completed"
    text = _texts(history.timeline)
    assert world.sign not in text and stored[0]["sign"] not in text
    assert stored[0]["result_details"] not in text
    assert json.dumps(stored[0]) not in text


def test_trade_history_counts_refunds_made_elsewhere(world: World) -> None:
    db = world.env.db
    trade_no = world.trades["done-0"]
    with db.transaction() as conn:
        ledger.record_gateway_refunds(
            conn, [(trade_no, "20260101000001", Decimal("3.00"), "SUCCESS")]
        )
        history = reads.trade_history(conn, trade_no)
    assert history is not None
    assert [(r.refund_id, r.state) for r in history.refunds] == [("done-0", "succeeded")]
    assert (history.refund_count, history.refunded_total) == (2, Decimal("4.00"))
    _in_order(history.timeline)
    kinds = [e.kind for e in history.timeline]
    assert kinds[0] == "received"
    assert {"batch", "attempt", "notification", "completed", "elsewhere"} <= set(kinds)
    with db.transaction() as conn:
        ledger.record_gateway_refunds(
            conn, [(trade(99), "20260101000002", Decimal("1.00"), "SUCCESS")]
        )
        only = reads.trade_history(conn, trade(99))
        (hit,) = reads.find(conn, trade(99))
    assert only is not None and only.refunds == [] and only.refund_count == 1
    assert hit.summary == "0 refunds here, 0 not failed, 1 made elsewhere"


# --- per-minute series ------------------------------------------------------------------

NOW = datetime(2026, 11, 22, 4, 10, 30, tzinfo=UTC)


def _at(minutes_before: float) -> datetime:
    return NOW - timedelta(minutes=minutes_before)


def test_series_count_each_refund_in_its_minute_with_zeros(db: Database) -> None:
    # (received, completed) relative to NOW = 04:10:30; the window of 5 minutes is
    # 04:06 .. 04:10 (the minute NOW is in last).
    times = {
        "old-open": (_at(60), None),  # open over the whole window
        "old-done-in": (_at(60), _at(2)),  # completed 04:08:30
        "old-done-before": (_at(60), _at(30)),  # completed before the window
        "in-open": (_at(3.5), None),  # received 04:07:00
        "in-done": (_at(3.9), _at(0.4)),  # received 04:06:36, completed 04:10:06
        "same-minute": (_at(1.25), _at(1.2)),  # received and completed 04:09:1x
        "later": (_at(-5), None),  # received after NOW: not counted
    }
    handle_deliveries(db, [delivery(request(r, trade(n))) for n, r in enumerate(times)])
    with db.transaction() as conn:
        for refund_id, (received, completed) in times.items():
            conn.execute(
                "UPDATE refunds SET received_at = %s, completed_at = %s,"
                " state = CASE WHEN %s::timestamptz IS NULL THEN 'pending' ELSE 'succeeded' END"
                " WHERE refund_id = %s",
                (received, completed, completed, refund_id),
            )
        done = reads.completed_per_minute(conn, minutes=5, now=NOW)
        backlog = reads.backlog_per_minute(conn, minutes=5, now=NOW)
        day = reads.completed_per_minute(conn, minutes=24 * 60, now=NOW)
    minutes = [datetime(2026, 11, 22, 4, m, tzinfo=UTC) for m in range(6, 11)]
    assert done == list(zip(minutes, [0, 0, 1, 1, 1], strict=True))
    # At the end of 04:06: old-open, old-done-in, in-done; 04:07: + in-open; 04:08: -
    # old-done-in; 04:09 the same (same-minute never counts); 04:10: - in-done.
    assert backlog == list(zip(minutes, [3, 4, 3, 3, 2], strict=True))
    assert len(day) == 24 * 60 and sum(n for _, n in day) == 4
    assert day[-1] == (minutes[-1], 1)
    assert all(b - a == timedelta(minutes=1) for (a, _), (b, _) in itertools.pairwise(day))


def test_series_of_an_empty_ledger_are_zeros_and_bad_windows_are_refused(db: Database) -> None:
    with db.transaction() as conn:
        assert [n for _, n in reads.backlog_per_minute(conn, minutes=3, now=NOW)] == [0, 0, 0]
        assert [n for _, n in reads.completed_per_minute(conn, minutes=1, now=NOW)] == [0]
        for bad in (0, -1, reads.MAX_SERIES_MINUTES + 1):
            with pytest.raises(ValueError, match="minutes must be between"):
                reads.completed_per_minute(conn, minutes=bad, now=NOW)
        with pytest.raises(ValueError, match="time zone"):
            reads.backlog_per_minute(conn, minutes=5, now=NOW.replace(tzinfo=None))


@pytest.mark.parametrize(
    "statement", [reads._COMPLETED_SERIES, reads._BACKLOG_SERIES], ids=["completed", "backlog"]
)
def test_series_statements_read_refunds_through_indexes(db: Database, statement: str) -> None:
    # With sequential scans priced out, a plan that still scans refunds would show that no
    # index can answer the statement (the backlog would cost a full table scan per chart).
    with db.transaction() as conn:
        conn.execute("SET LOCAL enable_seqscan = off")
        plan = "\n".join(
            str(r[0])
            for r in conn.execute("EXPLAIN " + statement, reads._series_params(60, NOW)).fetchall()
        )
    assert "Seq Scan on refunds" not in plan, plan
    assert "refunds_completed_idx" in plan, plan


# --- the migration on a ledger that already has data --------------------------------------


def _migrate_before(url: str, first_new: str) -> None:
    """Apply the migrations before `first_new` as `migrate` would."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE schema_migrations (name text PRIMARY KEY,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        for name, sql in migration_files():
            if name >= first_new:
                break
            with conn.transaction():
                conn.execute(sql.replace("{{default_partner}}", "2088000000000001").encode())
                conn.execute("INSERT INTO schema_migrations (name) VALUES (%s)", (name,))


def test_attempt_journal_migration_applies_on_a_populated_ledger() -> None:
    with fresh_database(migrate=False) as url:
        _migrate_before(url, "0006")
        db = Database(url, max_size=2)
        try:
            # The ledger as the code of that time wrote it (today's services write columns
            # of later migrations): two batches, one attempted twice, of three refunds.
            tried, untried = "20261122000000000001", "20261122000000000002"
            with db.transaction() as conn:
                for n, (batch_no, state) in enumerate(((tried, "unknown"), (untried, "ready"))):
                    conn.execute(
                        "INSERT INTO batches (batch_no, batch_day, state, item_count, partner)"
                        " VALUES (%s, '2026-11-22', %s, 1, '2088000000000001')",
                        (batch_no, state),
                    )
                    conn.execute(
                        "INSERT INTO refunds (refund_id, event_id, trade_no, amount,"
                        " content_hash, state, batch_no, partner) VALUES"
                        " (%s, %s, %s, 1.00, 'h', 'batched', %s, '2088000000000001')",
                        (f"m-{n}", f"e-{n}", trade(n), batch_no),
                    )
                    conn.execute(
                        "INSERT INTO batch_items (batch_no, refund_id, trade_no, amount,"
                        " reason_sent, position) VALUES (%s, %s, %s, 1.00, 'r', 0)",
                        (batch_no, f"m-{n}", trade(n)),
                    )
                conn.execute(
                    "UPDATE batches SET attempts = 2, last_code = 'SYSTEM_ERROR',"
                    " last_error = repeat('e', 900), last_attempt_at = clock_timestamp(),"
                    " maybe_sent = true WHERE batch_no = %s",
                    (tried,),
                )
            assert migrate(url, default_partner="2088000000000001") == [
                name for name, _ in migration_files() if name >= "0006"
            ]
            with db.transaction() as conn:
                rows = conn.execute(
                    "SELECT batch_no, attempt, started_at, outcome, code, length(error)"
                    " FROM batch_attempts"
                ).fetchall()
                history = reads.batch_history(conn, tried)
                assert reads.batch_history(conn, untried) is not None
            assert rows == [(tried, 2, None, "before_journal", "SYSTEM_ERROR", 500)]
            assert history is not None
            (entry,) = [e for e in history.timeline if e.kind == "attempt"]
            assert entry.title == f"attempt 2 of batch {tried} (last known answer)"
            assert "SYSTEM_ERROR" in entry.detail
        finally:
            db.close()


def test_an_attempt_overtaken_by_its_notification_is_journaled_as_superseded(
    db: Database,
) -> None:
    handle_deliveries(db, [delivery(request("s-0", trade(1)))])
    (batch_no,) = pack_pending(
        db, max_items=10, max_wait=0, merchants=MERCHANTS, clock=now_utc, force=True
    )

    class NotifiedWhileSending:
        def submit(self, params: dict[str, str]) -> SyncResponse:
            form = notify_form(batch_no, [(trade(1), "1.00", "SUCCESS")], notify_id="n-race")
            assert process_notification(db, "batch_refund", form, now_utc()) == "applied"
            return SyncResponse(SyncStatus.ACCEPTED, None, "gateway accepted the batch")

    gateway = NotifiedWhileSending()
    result = submit_batch(
        db, lambda _m: gateway, MERCHANTS, batch_no, clock=now_utc, lease_seconds=0.5
    )
    assert result.status == "completed"
    with db.transaction() as conn:
        rows = conn.execute(
            "SELECT attempt, started_at IS NOT NULL, outcome, action FROM batch_attempts"
        ).fetchall()
        history = reads.refund_history(conn, "s-0")
    assert rows == [(1, True, "answered", "superseded")]
    assert history is not None
    kinds = [e.kind for e in history.timeline]
    assert kinds.index("notification") < kinds.index("attempt")
