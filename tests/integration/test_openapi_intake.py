"""Intake of OpenAPI refunds (channels trade and coupon) against a real PostgreSQL: stored
with their out_request_no before any send, never batched, events as before."""

from __future__ import annotations

import pytest

from tests.support.ledger import (
    PARTNER,
    auth_no,
    delivery,
    fixed_clock,
    openapi_merchants,
    outbox_events,
    request,
    rows,
    trade,
)
from worker.adapters.postgres.pool import Database
from worker.openapi import out_request_no
from worker.services import intake
from worker.services.packing import pack_pending

pytestmark = pytest.mark.integration


def _intake(db: Database, *bodies: dict[str, object]):  # type: ignore[no-untyped-def]
    return intake.handle_deliveries(db, [delivery(b) for b in bodies], openapi_merchants())


def _coupon(refund_id: str, n: int, amount: str = "1.00", **extra: object) -> dict[str, object]:
    body = request(refund_id, "x", amount, channel="coupon", auth_no=auth_no(n), **extra)
    del body["trade_no"]
    return body


def _trade_by_out(refund_id: str, out: str, amount: str = "1.00") -> dict[str, object]:
    body = request(refund_id, "x", amount, channel="trade", out_trade_no=out)
    del body["trade_no"]
    return body


def test_openapi_refunds_are_stored_with_their_out_request_no_and_never_batched(
    db: Database,
) -> None:
    dead = _intake(
        db,
        request("b-1", trade(1)),
        request("t:1", trade(2), channel="trade"),
        _trade_by_out("t-2", "ORD-2"),
        _coupon("c-1", 1),
    )
    assert dead == []
    stored = rows(
        db,
        "SELECT refund_id, channel, state, trade_no, out_trade_no, auth_no, out_request_no,"
        " next_step, next_attempt_at IS NOT NULL FROM refunds ORDER BY refund_id",
    )
    assert stored == [
        ("b-1", "batch", "pending", trade(1), None, None, None, None, False),
        ("c-1", "coupon", "pending", None, None, auth_no(1), out_request_no("c-1"), "send", True),
        ("t-2", "trade", "pending", None, "ORD-2", None, out_request_no("t-2"), "send", True),
        ("t:1", "trade", "pending", trade(2), None, None, out_request_no("t:1"), "send", True),
    ]
    batches = pack_pending(
        db,
        max_items=1000,
        max_wait=0,
        merchants=openapi_merchants(),
        clock=fixed_clock,
        force=True,
    )
    assert len(batches) == 1
    assert rows(db, "SELECT refund_id FROM batch_items") == [("b-1",)]
    assert rows(
        db, "SELECT count(*) FROM refunds WHERE channel <> 'batch' AND state = 'pending'"
    ) == [(3,)]


def test_a_channel_the_merchant_has_no_app_for_is_dead_lettered(db: Database) -> None:
    dead = _intake(
        db, _coupon("c-2", 2, merchant="shop-b"), request("b-2", trade(3), merchant="shop-b")
    )
    assert [d.reason for d in dead] == ["channel_not_configured"]
    assert "shop-b" not in dead[0].detail and "2088000000000002" in dead[0].detail
    assert rows(db, "SELECT refund_id FROM refunds") == [("b-2",)]


def test_a_repeat_is_a_no_op_and_a_changed_channel_a_conflict(db: Database) -> None:
    first = _coupon("c-3", 3, "2.00")
    assert _intake(db, first) == []
    again = dict(first, event_id="another-event")
    assert _intake(db, again) == []
    as_batch = request("c-3", trade(4), "2.00")
    dead = _intake(db, as_batch)
    assert [d.reason for d in dead] == ["conflicting_duplicate"]
    assert rows(db, "SELECT count(*) FROM refunds") == [(1,)]


def test_a_rejected_openapi_refund_is_answered_with_its_channel(db: Database) -> None:
    assert _intake(db, _coupon("c-4", 4, "5.00", trade_amount="4.00")) == []
    (event,) = outbox_events(db)
    assert event["status"] == "rejected" and event["channel"] == "coupon"
    assert event["auth_no"] == auth_no(4) and event["out_request_no"] == out_request_no("c-4")
    assert event["batch_no"] is None and "trade_no" not in event
    assert event["merchant"] == PARTNER
