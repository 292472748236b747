"""Applying verified notifications against a real PostgreSQL database."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.support.ledger import PARTNER, accepted_batch, notify_form, outbox_events, rows, trade
from worker.adapters.postgres import ledger
from worker.adapters.postgres.pool import Database
from worker.services.notifications import (
    process_notification,
    replay_stored,
    sweep_unapplied,
)

pytestmark = pytest.mark.integration


def test_notification_completes_refunds_once(db: Database) -> None:
    batch_no, items = accepted_batch(db)
    results = [(i.trade_no, "2.50", "SUCCESS") for i in items[:3]]
    results.append((items[3].trade_no, "2.50", "TRADE_STATUS_ERROR"))
    form = notify_form(batch_no, results)
    now = datetime.now(tz=UTC)
    assert process_notification(db, "batch_refund", form, now) == "applied"
    assert process_notification(db, "batch_refund", form, now) == "duplicate"
    states = rows(db, "SELECT state, code, count(*) FROM refunds GROUP BY 1, 2 ORDER BY 1")
    assert states == [("failed", "TRADE_STATUS_ERROR", 1), ("succeeded", "SUCCESS", 3)]
    assert rows(db, "SELECT DISTINCT result_source FROM refunds") == [("notify",)]
    events = outbox_events(db)
    assert len(events) == 4
    assert {e["status"] for e in events} == {"succeeded", "failed"}
    assert all(e["batch_no"] == batch_no and e["order_id"].startswith("o-") for e in events)
    assert rows(db, "SELECT state FROM batches") == [("completed",)]

    # A late notification under another notify_id claiming the opposite changes nothing.
    flipped = [(t, a, "SUCCESS") for t, a, _ in results]
    assert (
        process_notification(db, "batch_refund", notify_form(batch_no, flipped, "n-2"), now)
        == "applied"
    )
    assert rows(db, "SELECT state, count(*) FROM refunds GROUP BY 1 ORDER BY 1") == [
        ("failed", 1),
        ("succeeded", 3),
    ]
    assert len(outbox_events(db)) == 4


def test_every_legal_shape_of_result_details_completes_the_refunds(db: Database) -> None:
    """Only the trade part is required; empty optional parts and separators are legal."""
    batch_no, items = accepted_batch(db, 6)
    t = [i.trade_no for i in items]
    details = (
        f"{t[0]}^2.50^SUCCESS$"
        f"#{t[1]}^2.5^SUCCESS$|"
        f"#{t[2]}^2.50^SUCCESS$$"
        f"##{t[3]}^2.50^success$a@b.com^2088101964737404^0.00^SUCCESS"
        f"|x@y.com^2088102210397302^u@v.com^2088101568345155^0.01^SUCCESS$$2.50^10.00^SUCCESS"
        f"#{t[4]}^2.50^REFUND_CHARGE_ERROR_X"
        f"#{t[5]}^2.50^ TRADE_HAS_CLOSED #"
    )
    form = dict(notify_form(batch_no, []), result_details=details, success_num="4")
    outcome = process_notification(db, "batch_refund", form, datetime.now(tz=UTC))

    assert outcome == "applied_with_problems"  # an unknown code is flagged, not refused
    assert rows(db, "SELECT refund_id, state, code FROM refunds ORDER BY refund_id") == [
        ("r-0", "succeeded", "SUCCESS"),
        ("r-1", "succeeded", "SUCCESS"),
        ("r-2", "succeeded", "SUCCESS"),
        ("r-3", "succeeded", "SUCCESS"),
        ("r-4", "failed", "REFUND_CHARGE_ERROR_X"),
        ("r-5", "failed", "TRADE_HAS_CLOSED"),
    ]
    assert len(outbox_events(db)) == 6
    assert rows(db, "SELECT state FROM batches") == [("completed",)]


def test_a_partly_unreadable_notification_applies_what_it_can_and_queries_the_rest(
    db: Database,
) -> None:
    batch_no, items = accepted_batch(db)
    details = (
        f"{items[0].trade_no}^2.50^SUCCESS#{items[1].trade_no}^2.50#^1^SUCCESS"
        "#2026112299999999999999^1.00^SUCCESS"
    )
    form = dict(notify_form(batch_no, []), result_details=details)
    outcome = process_notification(db, "batch_refund", form, datetime.now(tz=UTC))

    assert outcome == "applied_with_problems"
    assert rows(db, "SELECT state, count(*) FROM refunds GROUP BY 1 ORDER BY 1") == [
        ("submitted", 3),
        ("succeeded", 1),
    ]
    assert rows(
        db,
        "SELECT state, operator_flag, next_query_at > clock_timestamp() FROM batches",
    ) == [("accepted", "items_missing_from_notification", True)]
    (detail,) = rows(db, "SELECT detail FROM notifications")[0]
    assert "1 items not in the batch" in detail and "2 entries unreadable" in detail


def test_a_notification_for_an_unknown_batch_is_kept_and_replayed_later(db: Database) -> None:
    now = datetime.now(tz=UTC)
    form = notify_form("20261122000000000777", [(trade(1), "1.00", "SUCCESS")], "n-x")
    assert process_notification(db, "batch_refund", form, now) == "unknown_batch"
    empty = dict(form, notify_id="n-y", result_details="garbage^^^", success_num="x")
    assert process_notification(db, "batch_refund", empty, now) == "unknown_batch"
    assert rows(db, "SELECT notify_id, outcome FROM notifications ORDER BY 1") == [
        ("n-x", "unknown_batch"),
        ("n-y", "unknown_batch"),
    ]
    assert replay_stored(db, "n-x") == "unknown_batch"
    assert replay_stored(db, "nope") is None


def test_a_notification_stored_but_not_applied_is_applied_by_the_sweep(db: Database) -> None:
    """The worker died between storing a notification and applying it."""
    batch_no, items = accepted_batch(db)
    form = notify_form(batch_no, [(i.trade_no, "2.50", "SUCCESS") for i in items], "n-late")
    with db.transaction() as conn:
        ledger.store_notification(
            conn,
            notify_id="n-late",
            kind="batch_refund",
            batch_no=batch_no,
            form=form,
            received_at=datetime.now(tz=UTC),
            outcome="pending",
        )
    assert sweep_unapplied(db, older_than=3600) == []  # too young to be given up on
    assert sweep_unapplied(db, older_than=0) == ["n-late"]
    assert rows(db, "SELECT outcome FROM notifications") == [("applied",)]
    assert rows(db, "SELECT count(*) FROM refunds WHERE state = 'succeeded'") == [(4,)]
    # The same notification, delivered again by the queue, applies nothing twice.
    assert process_notification(db, "batch_refund", form, datetime.now(tz=UTC)) == "duplicate"
    assert len(outbox_events(db)) == 4


def test_dback_notification_is_stored_against_its_refund_with_the_card_masked(
    db: Database,
) -> None:
    batch_no, items = accepted_batch(db)
    form = {
        "notify_id": "d-1",
        "trade_no": items[2].trade_no,
        "refund_batch_no": batch_no,
        "status": "F",
        "bank_name": "ICBC",
        "card_no": "6222020012345678",
    }
    now = datetime.now(tz=UTC)
    assert process_notification(db, "dback", form, now) == "stored"
    assert process_notification(db, "dback", form, now) == "duplicate"
    assert rows(db, "SELECT form FROM notifications") == [(form,)]
    assert rows(
        db, "SELECT refund_id, trade_no, batch_no, card_last4, bank_name, status FROM dback_results"
    ) == [("r-2", items[2].trade_no, batch_no, "5678", "ICBC", "F")]
    assert rows(db, "SELECT count(*) FROM refunds WHERE state = 'submitted'") == [(4,)]


def test_a_result_for_a_released_batch_is_flagged_where_on_call_looks(db: Database) -> None:
    """The batch is closed (released), yet the flag must reach the gauge the alert reads
    and `batches --flagged`, and win over a flag the batch carried before."""
    from prometheus_client import CollectorRegistry, generate_latest

    from worker.observability.metrics import LedgerCollector

    batch_no, items = accepted_batch(db, 2)
    with db.transaction() as conn:
        ledger.flag_batch(conn, batch_no, "notification_overdue")
        ledger.return_to_pending(conn, batch_no, include_submitted=True)
        ledger.update_batch(conn, batch_no, state="released")

    outcome = process_notification(
        db,
        "batch_refund",
        notify_form(batch_no, [(i.trade_no, str(i.amount), "SUCCESS") for i in items], "n-rel"),
        datetime.now(tz=UTC),
    )

    assert outcome == "for_released_batch"
    assert rows(db, "SELECT operator_flag FROM batches") == [("notification_for_released_batch",)]
    registry = CollectorRegistry()
    registry.register(LedgerCollector(db))
    text = generate_latest(registry).decode()
    assert (
        f'refund_batches_flagged{{flag="notification_for_released_batch",merchant="{PARTNER}"}} 1.0'
        in text
    ), text
    with db.transaction() as conn:
        listed = ledger.list_batches(
            conn, waiting=False, flagged=True, overdue_seconds=None, limit=10
        )
    assert [b["batch_no"] for b in listed] == [batch_no]
