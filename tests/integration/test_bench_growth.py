"""The growth row's ledger (bench/growth.py): what it writes is a ledger the worker could
have written, and the schema is whole afterwards (real PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bench.growth import LEDGER_TRADE_PREFIX, build_ledger
from tests.support.ledger import rows
from worker.adapters.postgres.pool import Database
from worker.services.archiver import archive_round

pytestmark = pytest.mark.integration

PARTNER = "2088000000000001"
INDEXES = (
    "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema()"
    " AND tablename IN ('refunds', 'batches', 'batch_items') ORDER BY indexname"
)


def test_the_ledger_is_consistent_and_the_indexes_come_back(
    db: Database, database_url: str
) -> None:
    before = rows(db, INDEXES)
    build_ledger(database_url, 5_000, PARTNER)
    assert rows(db, INDEXES) == before
    assert rows(db, "SELECT count(*), count(DISTINCT trade_no) FROM refunds") == [(5_000, 1_000)]
    assert rows(db, "SELECT count(*), min(item_count), max(item_count) FROM batches") == [
        (5, 1000, 1000)
    ]
    # Every item names its refund and batch, once per trade per batch, positions 1..1000.
    assert rows(
        db,
        "SELECT count(*) FROM batch_items i JOIN refunds r USING (refund_id)"
        " JOIN batches b ON b.batch_no = i.batch_no WHERE r.batch_no = i.batch_no",
    ) == [(5_000,)]
    assert rows(db, "SELECT min(position), max(position) FROM batch_items") == [(1, 1000)]
    assert rows(db, "SELECT DISTINCT state, partner, left(trade_no, 10) FROM refunds") == [
        ("succeeded", PARTNER, LEDGER_TRADE_PREFIX)
    ]
    # Five partial refunds per trade, in five different batches.
    assert rows(
        db,
        "SELECT DISTINCT count(*), count(DISTINCT batch_no) FROM refunds GROUP BY trade_no",
    ) == [(5, 5)]


def test_the_ledger_lies_inside_the_retention(db: Database, database_url: str) -> None:
    build_ledger(database_url, 3_000, PARTNER)
    assert archive_round(db, retention_days=400, clock=lambda: datetime.now(UTC)) == 0
    assert archive_round(db, retention_days=30, clock=lambda: datetime.now(UTC)) == 3_000
