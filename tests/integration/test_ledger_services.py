"""Intake, packing and notification services against a real PostgreSQL database."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from tests.support.ledger import (
    PARTNER,
    delivery,
    fixed_clock,
    handle_deliveries,
    outbox_events,
    pack,
    request,
    rows,
    trade,
)
from worker.adapters.postgres import ledger
from worker.adapters.postgres.pool import Database
from worker.domain.errors import LedgerInvariantError
from worker.domain.rules import REFUND_COUNT_EXCEEDED, REFUND_TOTAL_EXCEEDS_TRADE_AMOUNT
from worker.mapi import BEIJING, decode_detail_data, encode_detail_data

pytestmark = pytest.mark.integration


def test_intake_stores_valid_requests_once(db: Database) -> None:
    dead = handle_deliveries(db, [delivery(request(f"r-{i}", trade(i))) for i in range(50)])
    assert dead == []
    assert rows(db, "SELECT count(*), min(state), max(state) FROM refunds") == [
        (50, "pending", "pending")
    ]


def test_intake_stores_every_field_as_it_was_requested(db: Database) -> None:
    # The micro-batch travels to PostgreSQL as one JSON document: text with quotes,
    # backslashes and non-ASCII, exact amounts, offsets and nested metadata survive it.
    metadata = {"source": '退货 "quoted" \\ back', "lines": [1, 2.5, None], "nested": {"a": {}}}
    full = request(
        "r-full",
        trade(1),
        "12.50",
        reason='破损 #3 ^ 部分退款 | $ "运费" \\',
        trade_amount="99999999.99",
        order_id="order-1",
        metadata=metadata,
        requested_at="2026-11-22T08:30:15.123456+08:00",
    )
    bare = request("r-bare", trade(2), "0.01")
    over = request("r-over", trade(3), "5.00", trade_amount="4.99", metadata={"k": "é"})
    assert handle_deliveries(db, [delivery(full), delivery(bare), delivery(over)]) == []
    stored = {
        r[0]: r[1:]
        for r in rows(
            db,
            "SELECT refund_id, trade_no, amount, reason, trade_amount, order_id, metadata,"
            " requested_at, state, code, completed_at IS NOT NULL FROM refunds",
        )
    }
    assert stored["r-full"] == (
        trade(1),
        Decimal("12.50"),
        full["reason"],
        Decimal("99999999.99"),
        "order-1",
        metadata,
        datetime(2026, 11, 22, 0, 30, 15, 123456, tzinfo=UTC),
        "pending",
        None,
        False,
    )
    assert stored["r-bare"] == (
        trade(2),
        Decimal("0.01"),
        None,
        None,
        None,
        None,
        None,
        "pending",
        None,
        False,
    )
    assert stored["r-over"][5:] == (
        {"k": "é"},
        None,
        "rejected",
        REFUND_TOTAL_EXCEEDS_TRADE_AMOUNT,
        True,
    )
    (event,) = outbox_events(db)
    assert (event["refund_id"], event["metadata"]) == ("r-over", {"k": "é"})


def test_intake_duplicate_is_a_noop_and_conflict_is_dead_lettered(db: Database) -> None:
    first = request("r-1", trade(1), "5.00", reason="damaged")
    assert handle_deliveries(db, [delivery(first)]) == []
    same = dict(first, event_id=str(uuid.uuid4()))
    assert handle_deliveries(db, [delivery(same)]) == []
    conflicting = dict(first, amount="6.00")
    dead = handle_deliveries(db, [delivery(conflicting)])
    assert [d.reason for d in dead] == ["conflicting_duplicate"]
    assert rows(db, "SELECT amount FROM refunds WHERE refund_id = 'r-1'") == [(Decimal("5.00"),)]


def test_intake_conflict_within_one_micro_batch(db: Database) -> None:
    a = request("r-1", trade(1), "5.00")
    b = dict(a, amount="7.00")
    dead = handle_deliveries(db, [delivery(a), delivery(dict(a)), delivery(b)])
    assert [d.reason for d in dead] == ["conflicting_duplicate"]
    assert rows(db, "SELECT count(*) FROM refunds") == [(1,)]


def test_intake_dead_letters_invalid_messages_with_reasons(db: Database) -> None:
    bad = [
        delivery(b"{not json"),
        delivery(b"\xff\xfe"),
        delivery(request("r-1", "123", "1.00")),  # trade_no too short
        delivery(request("r-2", trade(2), "1.234")),  # three decimals
    ]
    dead = handle_deliveries(db, bad)
    assert len(dead) == 4
    assert all(d.reason and d.detail for d in dead)
    assert {d.delivery.delivery_tag for d in dead} == {b.delivery_tag for b in bad}
    assert rows(db, "SELECT count(*) FROM refunds") == [(0,)]


def test_hundredth_refund_of_a_trade_is_rejected_with_an_event(db: Database) -> None:
    msgs = [delivery(request(f"r-{i}", trade(7), "0.01")) for i in range(100)]
    assert handle_deliveries(db, msgs[:60]) == []
    assert handle_deliveries(db, msgs[60:]) == []
    assert rows(db, "SELECT state, code, count(*) FROM refunds GROUP BY 1, 2 ORDER BY 1") == [
        ("pending", None, 99),
        ("rejected", REFUND_COUNT_EXCEEDED, 1),
    ]
    events = outbox_events(db)
    assert len(events) == 1
    assert events[0]["refund_id"] == "r-99"
    assert events[0]["status"] == "rejected"
    assert events[0]["batch_no"] is None


def test_refund_above_trade_amount_is_rejected(db: Database) -> None:
    msgs = [
        delivery(request("r-1", trade(3), "60.00", trade_amount="100.00")),
        delivery(request("r-2", trade(3), "50.00", trade_amount="100.00")),
        delivery(request("r-3", trade(3), "40.00", trade_amount="100.00")),
    ]
    assert handle_deliveries(db, msgs) == []
    states = dict(
        (r[0], (r[1], r[2])) for r in rows(db, "SELECT refund_id, state, code FROM refunds")
    )
    assert states == {
        "r-1": ("pending", None),
        "r-2": ("rejected", REFUND_TOTAL_EXCEEDS_TRADE_AMOUNT),
        "r-3": ("pending", None),
    }


def test_packer_waits_for_a_full_batch_or_the_wait_time(db: Database) -> None:
    handle_deliveries(db, [delivery(request(f"r-{i}", trade(i))) for i in range(5)])
    assert pack(db, max_items=10) == []
    assert rows(db, "SELECT count(*) FROM refunds WHERE state = 'pending'") == [(5,)]
    assert len(pack(db, max_items=10, max_wait=0)) == 1
    assert rows(db, "SELECT count(*) FROM refunds WHERE state = 'batched'") == [(5,)]


def test_packer_respects_the_gateway_rules(db: Database) -> None:
    msgs = [
        delivery(request(f"r-{i}", trade(i % 30), reason="broken # item ^ x")) for i in range(95)
    ]
    assert handle_deliveries(db, msgs) == []
    batch_nos = pack(db, max_items=20, force=True)
    assert len(batch_nos) >= 5
    today = fixed_clock().astimezone(BEIJING).strftime("%Y%m%d")
    seen = set()
    for batch_no in batch_nos:
        assert batch_no.startswith(today)
        with db.transaction() as conn:
            items = ledger.batch_items(conn, batch_no)
        assert items and len(items) <= 20
        assert len({i.trade_no for i in items}) == len(items)
        for item in items:
            assert "#" not in item.reason_sent and "^" not in item.reason_sent
        seen.update(i.refund_id for i in items)
        # What is recorded is exactly what the protocol can encode and decode.
        from worker.mapi import RefundItem

        text = encode_detail_data([RefundItem(i.trade_no, i.amount, i.reason_sent) for i in items])
        assert len(decode_detail_data(text)) == len(items)
    assert len(seen) == 95
    # The original reason is kept in the ledger.
    assert rows(db, "SELECT DISTINCT reason FROM refunds") == [("broken # item ^ x",)]


def _refund_states(db: Database, batch_no: str) -> list[tuple[Any, ...]]:
    return rows(
        db,
        "SELECT i.position, r.state, r.code, r.batch_no IS NULL, r.completed_at IS NULL"
        " FROM batch_items i JOIN refunds r USING (refund_id) WHERE i.batch_no = %s"
        " ORDER BY i.position",
        batch_no,
    )


def test_apply_results_does_what_mark_submitted_then_finish_refunds_did(db: Database) -> None:
    # Two identical batches in every state a notification can meet; one gets the single
    # statement, the other the two statements it replaces.
    batches = []
    for part in range(2):
        handle_deliveries(
            db, [delivery(request(f"r-{part}-{i}", trade(part * 10 + i))) for i in range(6)]
        )
        (batch_no,) = pack(db, force=True)
        batches.append(batch_no)
    for batch_no in batches:
        with db.transaction() as conn:
            items = ledger.batch_items(conn, batch_no)
            ids = [i.refund_id for i in items]
            conn.execute(
                "UPDATE refunds SET state = 'submitted' WHERE refund_id = ANY(%s)", (ids[2:4],)
            )
            conn.execute(
                "UPDATE refunds SET state = 'succeeded', code = 'SUCCESS',"
                " completed_at = clock_timestamp() WHERE refund_id = %s",
                (ids[4],),
            )
            conn.execute(  # released and waiting for another batch
                "UPDATE refunds SET state = 'pending', batch_no = NULL WHERE refund_id = %s",
                (ids[5],),
            )
    outcomes = {}
    for batch_no in batches:
        with db.transaction() as conn:
            ids = [i.refund_id for i in ledger.batch_items(conn, batch_no)]
        outcomes[batch_no] = [
            (ids[0], "succeeded", "SUCCESS"),
            (ids[2], "failed", "TRADE_STATUS_ERROR"),
            (ids[4], "failed", "LATE_AND_WRONG"),
            (ids[5], "succeeded", "SUCCESS"),
        ]
    one, two = batches
    with db.transaction() as conn:
        completed_one = ledger.apply_results(conn, one, outcomes[one], source="notify")
    with db.transaction() as conn:
        ledger.mark_submitted(conn, two)
        completed_two = ledger.finish_refunds(conn, two, outcomes[two], source="notify")

    assert _refund_states(db, one) == _refund_states(db, two)
    assert [r[1:3] for r in _refund_states(db, one)] == [
        ("succeeded", "SUCCESS"),
        ("submitted", None),
        ("failed", "TRADE_STATUS_ERROR"),
        ("submitted", None),
        ("succeeded", "SUCCESS"),
        ("pending", None),
    ]
    position = {r: n for n, r in enumerate(o[0] for o in outcomes[one])}
    position.update({r: n for n, r in enumerate(o[0] for o in outcomes[two])})
    assert sorted(position[c.refund_id] for c in completed_one) == [0, 1]
    assert sorted(position[c.refund_id] for c in completed_two) == [0, 1]
    assert {(c.status, c.code, c.batch_no) for c in completed_one} == {
        ("succeeded", "SUCCESS", one),
        ("failed", "TRADE_STATUS_ERROR", one),
    }
    with db.transaction() as conn:  # nothing reported and nothing left batched: no change
        assert ledger.apply_results(conn, one, [], source="notify") == []


def test_ledger_gauges_show_waiting_refunds(db: Database) -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from worker.observability.metrics import LedgerCollector

    handle_deliveries(db, [delivery(request(f"r-{i}", trade(i))) for i in range(5)])
    registry = CollectorRegistry()
    other = "2088000000000002"
    registry.register(LedgerCollector(db, [PARTNER, other]))
    text = generate_latest(registry).decode()
    assert f'refund_waiting{{merchant="{PARTNER}",state="pending"}} 5.0' in text
    assert "refund_outbox_backlog 0.0" in text
    assert f'refund_oldest_waiting_seconds{{merchant="{PARTNER}"}}' in text
    assert f'refund_oldest_waiting_seconds{{merchant="{other}"}} 0.0' in text
    assert f'refund_submission_halted{{merchant="{PARTNER}"}} 0.0' in text
    with db.transaction() as conn:
        ledger.set_submission_halt(conn, other, "ILLEGAL_SIGN on batch B1")
    text = generate_latest(registry).decode()
    assert f'refund_submission_halted{{merchant="{other}"}} 1.0' in text
    assert f'refund_submission_halted{{merchant="{PARTNER}"}} 0.0' in text


def test_create_batch_refuses_refunds_that_are_not_pending(db: Database) -> None:
    handle_deliveries(db, [delivery(request(f"r-{i}", trade(i))) for i in range(3)])
    with db.transaction() as conn:
        pending = ledger.pending_refunds(conn, 10)
        conn.execute("UPDATE refunds SET state = 'rejected' WHERE refund_id = 'r-1'")
    items = [ledger.BatchItem(p.refund_id, p.trade_no, p.amount, "") for p in pending]
    day, due = fixed_clock().date(), fixed_clock()
    with (
        pytest.raises(LedgerInvariantError, match="2 of its 3 refunds were pending"),
        db.transaction() as conn,
    ):
        ledger.create_batch(conn, "20261122000000000099", day, items, due, partner=PARTNER)
    assert rows(db, "SELECT count(*) FROM batches") == [(0,)]
    assert rows(db, "SELECT state, count(*) FROM refunds GROUP BY 1 ORDER BY 1") == [
        ("pending", 2),
        ("rejected", 1),
    ]
