"""The archive (migration 0009): final refunds past the retention leave the hot tables,
and nothing that must see the whole history loses sight of them (real PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from tests.support.ledger import (
    delivery,
    handle_deliveries,
    openapi_merchants,
    pack,
    request,
    rows,
    trade,
)
from worker.adapters.postgres import status
from worker.adapters.postgres.pool import Database
from worker.domain.rules import REFUND_TOTAL_EXCEEDS_TRADE_AMOUNT
from worker.services import intake
from worker.services.archiver import archive_round

pytestmark = pytest.mark.integration

RETENTION = 400


def now() -> datetime:
    return datetime.now(UTC)


def settle(db: Database, batch_no: str, *, state: str = "completed", days_ago: int) -> None:
    """The batch's refunds succeeded `days_ago` days ago and the batch is `state`."""
    with db.transaction() as conn:
        conn.execute("UPDATE batches SET state = %s WHERE batch_no = %s", (state, batch_no))
        conn.execute(
            "UPDATE refunds SET state = 'succeeded', code = 'SUCCESS',"
            " completed_at = now() - make_interval(days => %s) WHERE batch_no = %s",
            (days_ago, batch_no),
        )


def one_batch(db: Database, prefix: str, trades: range, amount: str = "1.00") -> str:
    deliveries = [delivery(request(f"{prefix}-{i}", trade(i), amount)) for i in trades]
    assert handle_deliveries(db, deliveries) == []
    (batch_no,) = pack(db, max_items=1000, max_wait=0)
    return batch_no


def hot_and_archived(db: Database) -> tuple[list[str], list[str]]:
    hot = [r[0] for r in rows(db, "SELECT refund_id FROM refunds ORDER BY refund_id")]
    old = [r[0] for r in rows(db, "SELECT refund_id FROM refunds_archive ORDER BY refund_id")]
    return hot, old


def test_only_final_refunds_past_the_retention_in_closed_batches_move(db: Database) -> None:
    old = one_batch(db, "old", range(0, 3))
    settle(db, old, days_ago=RETENTION + 1)
    recent = one_batch(db, "recent", range(10, 12))
    settle(db, recent, days_ago=RETENTION - 1)
    # Final refunds past the retention, but their batch could still change: they stay.
    flagged = one_batch(db, "flagged", range(20, 22))
    settle(db, flagged, days_ago=RETENTION + 5)
    rows(
        db,
        "UPDATE batches SET operator_flag = 'notification_for_released_batch'"
        " WHERE batch_no = %s RETURNING 1",
        flagged,
    )
    accepted = one_batch(db, "accepted", range(30, 32))
    settle(db, accepted, state="accepted", days_ago=RETENTION + 5)
    pending = [delivery(request("open-1", trade(40)))]
    assert handle_deliveries(db, pending) == []

    assert archive_round(db, retention_days=RETENTION, clock=now) == 3
    hot, archived = hot_and_archived(db)
    assert archived == ["old-0", "old-1", "old-2"]
    assert not any(r.startswith("old-") for r in hot) and len(hot) == 7
    # The rows naming them moved with them; the batch itself stays.
    assert rows(db, "SELECT count(*) FROM batch_items WHERE batch_no = %s", old) == [(0,)]
    assert rows(db, "SELECT count(*) FROM batch_items_archive WHERE batch_no = %s", old) == [(3,)]
    # A second round finds nothing more.
    assert archive_round(db, retention_days=RETENTION, clock=now) == 0


def test_rounds_move_at_most_their_limit_oldest_first(db: Database) -> None:
    batch_no = one_batch(db, "r", range(0, 5))
    settle(db, batch_no, days_ago=RETENTION + 10)
    rows(
        db,
        "UPDATE refunds SET completed_at = completed_at + make_interval(secs => "
        "substr(refund_id, 3)::int) WHERE batch_no = %s RETURNING 1",
        batch_no,
    )
    assert archive_round(db, retention_days=RETENTION, clock=now, limit=2) == 2
    assert hot_and_archived(db)[1] == ["r-0", "r-1"]
    assert archive_round(db, retention_days=RETENTION, clock=now, limit=10) == 3
    assert hot_and_archived(db) == ([], [f"r-{i}" for i in range(5)])


def test_every_row_naming_an_archived_refund_moves_with_it(db: Database) -> None:
    batch_no = one_batch(db, "c", range(0, 2))
    settle(db, batch_no, days_ago=RETENTION + 1)
    with db.transaction() as conn:
        conn.execute(
            "INSERT INTO openapi_calls (refund_id, attempt, kind, method, started_at, outcome)"
            " VALUES ('c-0', 1, 'query', 'alipay.trade.fastpay.refund.query', now(), 'answered')"
        )
        conn.execute(
            "INSERT INTO openapi_notifications (notify_id, partner, notify_type, refund_id,"
            " form, received_at, outcome) VALUES ('n-1', 'p', 't', 'c-1', '{}', now(), 'applied')"
        )
    assert archive_round(db, retention_days=RETENTION, clock=now) == 2
    for table in ("refunds", "batch_items", "openapi_calls", "openapi_notifications"):
        assert rows(db, f"SELECT count(*) FROM {table}") == [(0,)], table
    assert rows(db, "SELECT refund_id FROM openapi_calls_archive") == [("c-0",)]
    assert rows(db, "SELECT refund_id FROM openapi_notifications_archive") == [("c-1",)]


def test_status_finds_an_archived_refund_and_its_batch(db: Database) -> None:
    batch_no = one_batch(db, "s", range(0, 2))
    settle(db, batch_no, days_ago=RETENTION + 1)
    assert archive_round(db, retention_days=RETENTION, clock=now) == 2
    with db.transaction() as conn:
        found: dict[str, Any] = status.refund_status(conn, "s-1")
        batch = status.batch_status(conn, batch_no)
    assert found["archived"] is True
    assert found["refund"]["state"] == "succeeded" and found["refund"]["archived_at"]
    assert [b["batch_no"] for b in found["batches"]] == [batch_no]
    assert [(i["refund_id"], i["state"]) for i in batch["items"]] == [
        ("s-0", "succeeded"),
        ("s-1", "succeeded"),
    ]


def test_status_shows_an_archived_openapi_refund_s_calls_and_notifications(
    db: Database,
) -> None:
    stored = request("o-1", trade(7), "3.00", channel="trade")
    assert intake.handle_deliveries(db, [delivery(stored)], openapi_merchants()) == []
    with db.transaction() as conn:
        conn.execute(
            "UPDATE refunds SET state = 'succeeded', code = '10000',"
            " completed_at = now() - make_interval(days => %s) WHERE refund_id = 'o-1'",
            (RETENTION + 1,),
        )
        conn.execute(
            "INSERT INTO openapi_calls (refund_id, attempt, kind, method, started_at, outcome)"
            " VALUES ('o-1', 1, 'send', 'alipay.trade.refund', now(), 'answered')"
        )
        conn.execute(
            "INSERT INTO openapi_notifications (notify_id, partner, notify_type, refund_id,"
            " form, received_at, outcome) VALUES ('n-o', 'p', 't', 'o-1', '{}', now(), 'applied')"
        )
    assert archive_round(db, retention_days=RETENTION, clock=now) == 1
    with db.transaction() as conn:
        found: dict[str, Any] = status.refund_status(conn, "o-1")
    assert found["archived"] is True and found["refund"]["channel"] == "trade"
    assert [c["method"] for c in found["openapi_calls"]] == ["alipay.trade.refund"]
    assert [n["notify_id"] for n in found["openapi_notifications"]] == ["n-o"]


def test_intake_sees_archived_refunds_as_stored(db: Database) -> None:
    stored = request("a-0", trade(0), "8.00", trade_amount="10.00")
    assert handle_deliveries(db, [delivery(stored)]) == []
    (batch_no,) = pack(db, max_items=1000, max_wait=0)
    settle(db, batch_no, days_ago=RETENTION + 1)
    assert archive_round(db, retention_days=RETENTION, clock=now) == 1

    # A re-send of the archived request is a no-op; a different one under its id conflicts.
    resend = dict(stored, event_id="another-event")
    conflict = dict(stored, amount="9.00", event_id="a-third-event")
    dead = handle_deliveries(db, [delivery(resend), delivery(conflict)])
    assert [d.reason for d in dead] == ["conflicting_duplicate"]
    assert rows(db, "SELECT count(*) FROM refunds") == [(0,)]
    # The archived 8.00 still counts against the trade: 5.00 more would exceed 10.00.
    more = request("a-1", trade(0), "5.00", trade_amount="10.00")
    assert handle_deliveries(db, [delivery(more)]) == []
    assert rows(db, "SELECT state, code FROM refunds WHERE refund_id = 'a-1'") == [
        ("rejected", REFUND_TOTAL_EXCEEDS_TRADE_AMOUNT)
    ]


@pytest.mark.parametrize(
    ("hot", "archive"),
    [
        ("refunds", "refunds_archive"),
        ("batch_items", "batch_items_archive"),
        ("openapi_calls", "openapi_calls_archive"),
        ("openapi_notifications", "openapi_notifications_archive"),
    ],
)
def test_archive_tables_have_their_hot_tables_columns_in_order(
    db: Database, hot: str, archive: str
) -> None:
    # Rows are copied by position: a migration that adds a column to a hot table must add
    # it to the archive table in the same place.
    def columns(table: str) -> list[tuple[str, str]]:
        return [
            (str(r[0]), str(r[1]))
            for r in rows(
                db,
                "SELECT column_name, data_type FROM information_schema.columns"
                " WHERE table_name = %s ORDER BY ordinal_position",
                table,
            )
        ]

    assert columns(archive) == [*columns(hot), ("archived_at", "timestamp with time zone")]
