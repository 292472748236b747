"""The database adapter under concurrency, and the indexes the hot queries rely on."""

from __future__ import annotations

import contextlib
import threading

import psycopg
import pytest

from tests.support.plans import ExplainingConnection, scans_of
from worker.adapters.postgres import ledger
from worker.adapters.postgres.pool import Database

pytestmark = pytest.mark.integration


def _first_query(db: Database, start: threading.Barrier, errors: list[BaseException]) -> None:
    start.wait()
    try:
        with db.transaction() as conn:
            conn.execute("SELECT 1")
    except BaseException as exc:
        errors.append(exc)


def test_first_transactions_from_many_threads_open_the_pool_once(database_url: str) -> None:
    # Worker threads open the pool lazily; all starting at once used to trip psycopg_pool.
    for _ in range(5):
        db = Database(database_url, max_size=4, name="refund-worker-test")
        barrier = threading.Barrier(8)
        errors: list[BaseException] = []

        threads = [
            threading.Thread(target=_first_query, args=(db, barrier, errors)) for _ in range(8)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        db.close()
        assert errors == []


def _backlog(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    """30,000 refunds waiting in 30 batches, plus 20,000 pending: a sale-day backlog."""
    conn.execute(
        "INSERT INTO refunds (refund_id, event_id, trade_no, amount, content_hash, state,"
        " batch_no, partner) SELECT 'r' || i, 'e' || i, lpad(i::text, 20, '0'), 1.00, 'h',"
        " 'batched', 'B' || (i / 1000), '2088000000000001' FROM generate_series(1, 30000) AS i"
    )
    conn.execute(
        "INSERT INTO refunds (refund_id, event_id, trade_no, amount, content_hash, state,"
        " partner) SELECT 'p' || i, 'f' || i, lpad(i::text, 20, '9'), 1.00, 'h', 'pending',"
        " '2088000000000001' FROM generate_series(1, 20000) AS i"
    )
    conn.execute("ANALYZE refunds")


@pytest.mark.parametrize(
    "statement",
    ["mark_submitted", "return_to_pending", "open_in_batch", "undo_batch_attempt", "apply_results"],
)
def test_a_batchs_refunds_are_found_by_index_whatever_the_backlog(
    database_url: str, statement: str
) -> None:
    """The statements that move a batch's refunds never scan a partial index on `state`."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        _backlog(conn)
        explaining = ExplainingConnection(conn)
        call = {
            "mark_submitted": lambda c: ledger.mark_submitted(c, "B7"),
            "return_to_pending": lambda c: ledger.return_to_pending(
                c, "B7", include_submitted=True
            ),
            "open_in_batch": lambda c: ledger.open_in_batch(c, "B7"),
            "undo_batch_attempt": lambda c: ledger.undo_batch_attempt(c, "B7"),
            "apply_results": lambda c: ledger.apply_results(
                c, "B7", [("r7001", "succeeded", "S")], source="notify"
            ),
        }[statement]
        # The function reads its (absent) rows; the plan is what counts here.
        with contextlib.suppress(IndexError, TypeError):
            call(explaining)
        scans = scans_of(explaining, "refunds")
    assert scans, explaining.plans
    assert all(index == "refunds_batch_idx" for _node, index in scans), scans


def test_the_packer_reads_pending_refunds_through_its_partial_index(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        _backlog(conn)
        explaining = ExplainingConnection(conn)
        ledger.pending_refunds(explaining, 1000)
        scans = scans_of(explaining, "refunds")
    assert [index for _node, index in scans] == ["refunds_pending_idx"], scans
