"""Intake judges every repeat of a refund_id against the request that stands (real PostgreSQL)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from worker.bus import Delivery
from worker.db import Database
from worker.services.intake import handle_deliveries

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
