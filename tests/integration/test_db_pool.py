"""The database adapter under concurrency, and the indexes the hot queries rely on."""

from __future__ import annotations

import threading

import psycopg
import pytest

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


def test_a_batchs_refunds_are_found_by_index_whatever_the_backlog(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO refunds (refund_id, event_id, trade_no, amount, content_hash, state,"
            " batch_no) SELECT 'r' || i, 'e' || i, lpad(i::text, 20, '0'), 1.00, 'h',"
            " 'batched', 'B' || (i / 1000) FROM generate_series(1, 30000) AS i"
        )
        conn.execute("ANALYZE refunds")
        plan = "\n".join(
            str(row[0])
            for row in conn.execute(
                "EXPLAIN UPDATE refunds SET state = 'submitted'"
                " WHERE batch_no = 'B7' AND state = 'batched'"
            )
        )
    assert "refunds_batch_idx" in plan, plan
