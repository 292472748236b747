"""Intake judges every repeat of a refund_id against the request that stands (real PostgreSQL)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

from tests.support.ledger import handle_deliveries
from worker.adapters.postgres import ledger
from worker.adapters.postgres.pool import Connection, Database
from worker.services.ports import Delivery

pytestmark = pytest.mark.integration

TRADE = "2026112299000000000001"


def delivery(body: dict[str, Any], tag: int) -> Delivery:
    return Delivery(
        delivery_tag=tag,
        body=json.dumps(body).encode(),
        message_id=f"m-{tag}",
        headers={},
        redelivered=False,
        content_type="application/json",
        routing_key="refund.requested",
    )


def request(amount: str = "5.00") -> dict[str, Any]:
    return {"event_id": str(uuid.uuid4()), "refund_id": "r-1", "trade_no": TRADE, "amount": amount}


def amounts(db: Database) -> list[str]:
    with db.transaction() as conn:
        return [str(r[0]) for r in conn.execute("SELECT amount FROM refunds").fetchall()]


def test_a_resend_next_to_a_conflict_is_still_a_duplicate(db: Database) -> None:
    # Regression (found by the bad-input chaos scenario): a conflicting request and a
    # re-send of the stored one in the same micro-batch got *both* dead-lettered, the
    # re-send because it differed from the conflict that happened to come first.
    stored = request()
    assert handle_deliveries(db, [delivery(stored, 1)]) == []
    conflict = dict(stored, amount="6.00", event_id=str(uuid.uuid4()))
    resend = dict(stored, event_id=str(uuid.uuid4()))
    dead = handle_deliveries(db, [delivery(conflict, 2), delivery(resend, 3), delivery(stored, 4)])
    assert [(d.delivery.message_id, d.reason) for d in dead] == [("m-2", "conflicting_duplicate")]
    assert amounts(db) == ["5.00"]


def test_in_a_new_refunds_batch_the_first_stands_and_repeats_are_judged_against_it(
    db: Database,
) -> None:
    first = request("5.00")
    conflict = dict(first, amount="7.00")
    dead = handle_deliveries(
        db,
        [
            delivery(first, 1),
            delivery(conflict, 2),
            delivery(dict(first), 3),
            delivery(conflict, 4),
        ],
    )
    assert [(d.delivery.message_id, d.reason) for d in dead] == [
        ("m-2", "conflicting_duplicate"),
        ("m-4", "conflicting_duplicate"),
    ]
    assert amounts(db) == ["5.00"]


# --- two intake replicas at once ----------------------------------------------------


@pytest.fixture
def second_db(database_url: str) -> Iterator[Database]:
    """Another replica's pool on the same database."""
    database = Database(database_url, max_size=2, name="refund-worker-test-b")
    try:
        yield database
    finally:
        database.close()


def refund(refund_id: str, amount: str) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "refund_id": refund_id,
        "trade_no": TRADE,
        "amount": amount,
        "trade_amount": "10.00",
    }


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.01)


def advisory_lock_waiters(db: Database) -> int:
    with db.transaction() as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_a_refund_stored_by_another_replica_meanwhile_counts_once_toward_the_trade(
    db: Database, second_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Replica A stores R1 and holds its transaction open after the insert. Replica B
    # received a copy of R1 too, next to R3 of the same trade (10.00 paid, 5.00 + 5.00
    # asked). B must see R1 once, as stored by A: R3 fits the trade and is pending.
    r1 = refund("r-1", "5.00")
    r3 = refund("r-3", "5.00")
    a_inserted = threading.Event()
    a_may_commit = threading.Event()
    insert_refunds = ledger.insert_refunds

    def insert_then_hold(conn: Connection, rows: Sequence[ledger.NewRefund]) -> set[str]:
        inserted = insert_refunds(conn, rows)
        if threading.current_thread().name == "replica-a":
            a_inserted.set()
            assert a_may_commit.wait(10)
        return inserted

    monkeypatch.setattr(ledger, "insert_refunds", insert_then_hold)
    results: dict[str, Any] = {}

    def replica(name: str, database: Database, deliveries: list[Delivery]) -> None:
        try:
            results[name] = handle_deliveries(database, deliveries)
        except BaseException as exc:  # surfaced by the assertions below
            results[name] = exc

    a = threading.Thread(
        target=replica, args=("a", db, [delivery(r1, 1)]), name="replica-a", daemon=True
    )
    b = threading.Thread(
        target=replica,
        args=("b", second_db, [delivery(r1, 2), delivery(r3, 3)]),
        name="replica-b",
        daemon=True,
    )
    a.start()
    assert a_inserted.wait(10)
    b.start()
    wait_for(lambda: advisory_lock_waiters(db) > 0, "replica B waits for the trade's lock")
    a_may_commit.set()
    a.join(10)
    b.join(10)

    assert results == {"a": [], "b": []}
    with db.transaction() as conn:
        stored = conn.execute(
            "SELECT refund_id, state, code FROM refunds ORDER BY refund_id"
        ).fetchall()
    assert stored == [("r-1", "pending", None), ("r-3", "pending", None)]
