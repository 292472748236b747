"""Several merchants in one ledger: intake, packing, the halt, in-flight limits, notifications."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from tests.support.ledger import (
    PARTNER,
    delivery,
    handle_deliveries,
    outbox_events,
    request,
    rows,
    trade,
)
from worker.adapters.postgres import ledger
from worker.adapters.postgres.pool import Database
from worker.domain.merchants import MerchantProfile, Merchants
from worker.mapi import Merchant, SyncResponse, SyncStatus
from worker.services.notifications import process_notification
from worker.services.packing import pack_pending
from worker.services.submission import submit_batch
from worker.services.sweeper import resume_submission, sweep

pytestmark = pytest.mark.integration

OTHER = "2088000000000002"
MERCHANTS = Merchants(
    [
        MerchantProfile(id="shop-a", gateway=Merchant(partner=PARTNER, md5_key="a" * 32)),
        MerchantProfile(
            id="shop-b",
            gateway=Merchant(partner=OTHER, charset="gbk", md5_key="b" * 32),
            max_in_flight=1,
        ),
    ]
)


def now() -> datetime:
    return datetime.now(tz=UTC)


def pack(db: Database) -> list[str]:
    return pack_pending(
        db, max_items=1000, max_wait=3600, merchants=MERCHANTS, clock=now, force=True
    )


def batch_partners(db: Database) -> dict[str, str]:
    return {str(b): str(p) for b, p in rows(db, "SELECT batch_no, partner FROM batches")}


class Gateway:
    """A submission client that answers every batch the same way and counts them."""

    def __init__(self, answer: SyncResponse) -> None:
        self.answer = answer
        self.sent: list[str] = []

    def submit(self, params: dict[str, str]) -> SyncResponse:
        self.sent.append(params["batch_no"])
        return self.answer


ACCEPTED = SyncResponse(SyncStatus.ACCEPTED, None, "T")
ILLEGAL_SIGN = SyncResponse(SyncStatus.REFUSED, "ILLEGAL_SIGN", "F ILLEGAL_SIGN")


def test_a_request_belongs_to_the_merchant_it_names(db: Database) -> None:
    dead = handle_deliveries(
        db,
        [
            delivery(request("r-a", trade(1))),  # the default merchant
            delivery(request("r-b", trade(2), merchant="shop-b")),
            delivery(request("r-p", trade(3), merchant=OTHER)),
            delivery(request("r-z", trade(4), merchant="shop-z")),
        ],
        MERCHANTS,
    )

    assert [(d.reason, d.detail) for d in dead] == [
        (
            "unknown_merchant",
            "merchant: 'shop-z' is neither the partner id nor the id of a merchant this"
            " deployment serves",
        )
    ]
    assert rows(db, "SELECT refund_id, partner FROM refunds ORDER BY refund_id") == [
        ("r-a", PARTNER),
        ("r-b", OTHER),
        ("r-p", OTHER),
    ]


def test_a_repeat_for_another_merchant_is_a_conflict_and_an_alias_is_the_same_merchant(
    db: Database,
) -> None:
    first = request("r-1", trade(1), merchant="shop-b")
    assert handle_deliveries(db, [delivery(first)], MERCHANTS) == []

    same = {**first, "event_id": "e-again", "merchant": OTHER}  # the partner id of shop-b
    assert handle_deliveries(db, [delivery(same)], MERCHANTS) == []
    other = {**first, "event_id": "e-other", "merchant": "shop-a"}
    absent = {k: v for k, v in first.items() if k != "merchant"}  # the default: shop-a
    dead = handle_deliveries(db, [delivery(other), delivery(absent)], MERCHANTS)

    assert [d.reason for d in dead] == ["conflicting_duplicate", "conflicting_duplicate"]
    assert rows(db, "SELECT partner FROM refunds") == [(OTHER,)]


def test_batches_never_mix_merchants_and_reasons_are_made_safe_in_each_charset(
    db: Database,
) -> None:
    handle_deliveries(
        db,
        [delivery(request(f"a-{i}", trade(i), reason="退款 ☃")) for i in range(3)]
        + [
            delivery(request(f"b-{i}", trade(10 + i), reason="退款 ☃", merchant="shop-b"))
            for i in range(2)
        ],
        MERCHANTS,
    )
    batches = pack(db)

    assert sorted(batch_partners(db).values()) == [PARTNER, OTHER]
    assert len(batches) == 2 and len(set(batches)) == 2
    by_partner = {
        str(p): sorted(
            str(r) for (r,) in rows(db, "SELECT refund_id FROM refunds WHERE batch_no = %s", b)
        )
        for b, p in batch_partners(db).items()
    }
    assert by_partner == {PARTNER: ["a-0", "a-1", "a-2"], OTHER: ["b-0", "b-1"]}
    reasons = dict(
        rows(
            db,
            "SELECT b.partner, min(i.reason_sent) FROM batch_items i"
            " JOIN batches b USING (batch_no) GROUP BY b.partner",
        )
    )
    # The snowman has no GBK form: made safe for the GBK merchant, kept for UTF-8.
    assert reasons == {PARTNER: "退款 ☃", OTHER: "退款 ?"}


def test_a_refund_of_a_merchant_no_longer_served_waits_and_its_batch_is_held(
    db: Database,
) -> None:
    handle_deliveries(db, [delivery(request("b-1", trade(1), merchant="shop-b"))], MERCHANTS)
    only_a = Merchants([MERCHANTS.default])
    assert (
        pack_pending(db, max_items=1000, max_wait=3600, merchants=only_a, clock=now, force=True)
        == []
    )
    assert rows(db, "SELECT state FROM refunds") == [("pending",)]

    (batch_no,) = pack(db)
    gateway = Gateway(ACCEPTED)
    result = submit_batch(db, lambda _m: gateway, only_a, batch_no, clock=now, lease_seconds=30.0)
    assert result.status == "held" and gateway.sent == []
    assert rows(db, "SELECT state, operator_flag FROM batches") == [("held", "merchant_not_served")]

    # The merchant is served again: resuming it makes its batch due, same batch_no.
    assert resume_submission(db, OTHER) == [batch_no]
    result = submit_batch(
        db, lambda _m: gateway, MERCHANTS, batch_no, clock=now, lease_seconds=30.0
    )
    assert result.status == "accepted" and gateway.sent == [batch_no]


def test_refunds_of_a_merchant_not_served_never_hold_back_the_others(db: Database) -> None:
    """They are the oldest and fill the packer's whole look-ahead; shop-a still packs."""
    only_a = Merchants([MERCHANTS.default])
    handle_deliveries(
        db,
        [delivery(request(f"b-{i}", trade(i), merchant="shop-b")) for i in range(30)],
        MERCHANTS,
    )
    handle_deliveries(db, [delivery(request("a-1", trade(99)))], MERCHANTS)

    # A look-ahead of 20 refunds (max_items 1 x 20), every one of them shop-b's.
    batches = pack_pending(db, max_items=1, max_wait=0, merchants=only_a, clock=now, force=True)

    assert len(batches) == 1
    assert rows(db, "SELECT refund_id FROM refunds WHERE state = 'batched'") == [("a-1",)]


def test_a_configuration_error_halts_only_that_merchant(db: Database) -> None:
    handle_deliveries(
        db,
        [delivery(request(f"a-{i}", trade(i))) for i in range(2)]
        + [delivery(request(f"b-{i}", trade(10 + i), merchant="shop-b")) for i in range(2)],
        MERCHANTS,
    )
    assert len(pack(db)) == 2
    batches = {p: b for b, p in batch_partners(db).items()}
    gateways = {PARTNER: Gateway(ACCEPTED), OTHER: Gateway(ILLEGAL_SIGN)}

    def submit(batch_no: str) -> str:
        return submit_batch(
            db,
            lambda m: gateways[m.partner],
            MERCHANTS,
            batch_no,
            clock=now,
            lease_seconds=30.0,
        ).status

    assert submit(batches[OTHER]) == "held"
    with db.transaction() as conn:
        assert list(ledger.submission_halts(conn)) == [OTHER]
    assert submit(batches[PARTNER]) == "accepted"  # the other merchant goes on

    # A new batch of the halted merchant is held without being sent.
    handle_deliveries(db, [delivery(request("b-9", trade(19), merchant="shop-b"))], MERCHANTS)
    (late,) = pack(db)
    sent = len(gateways[OTHER].sent)
    assert submit(late) == "held" and len(gateways[OTHER].sent) == sent
    # The sweep re-drives nothing of the halted merchant.
    assert sweep(db, lease_seconds=30.0).due == []

    assert resume_submission(db, PARTNER) == []  # not halted: nothing to resume
    assert sorted(resume_submission(db, OTHER)) == sorted([batches[OTHER], late])
    gateways[OTHER].answer = ACCEPTED
    assert submit(batches[OTHER]) == "accepted"


def test_at_most_max_in_flight_batches_of_a_merchant_are_sent_at_once(db: Database) -> None:
    handle_deliveries(
        db,
        [delivery(request(f"b-{i}", trade(i), merchant="shop-b")) for i in range(2)],
        MERCHANTS,
    )
    first = pack(db)
    handle_deliveries(db, [delivery(request("b-x", trade(0), merchant="shop-b"))], MERCHANTS)
    second = pack(db)  # the same trade again: a batch of its own
    with db.transaction() as conn:
        ledger.update_batch(conn, first[0], state="submitting")  # one in flight (lease fresh)

    gateway = Gateway(ACCEPTED)
    result = submit_batch(
        db, lambda _m: gateway, MERCHANTS, second[0], clock=now, lease_seconds=30.0
    )

    assert result.status == "throttled" and gateway.sent == []
    [(state, due_later)] = rows(
        db,
        "SELECT state, next_attempt_at > clock_timestamp() FROM batches WHERE batch_no = %s",
        second[0],
    )
    assert (state, due_later) == ("ready", True)
    # With a limit of two, the same batch goes.
    wider = Merchants([dataclasses.replace(p, max_in_flight=2) for p in MERCHANTS])
    assert (
        submit_batch(db, lambda _m: gateway, wider, second[0], clock=now, lease_seconds=30.0).status
        == "accepted"
    )


def test_a_notification_is_applied_only_to_a_batch_of_the_merchant_it_was_signed_for(
    db: Database,
) -> None:
    handle_deliveries(db, [delivery(request("b-1", trade(1), merchant="shop-b"))], MERCHANTS)
    (batch_no,) = pack(db)
    with db.transaction() as conn:
        ledger.update_batch(conn, batch_no, state="accepted", maybe_sent=True)
        ledger.mark_submitted(conn, batch_no)
    form = {
        "notify_id": "n-1",
        "notify_type": "batch_refund_notify",
        "batch_no": batch_no,
        "success_num": "1",
        "result_details": f"{trade(1)}^1.00^SUCCESS",
    }

    assert process_notification(db, "batch_refund", form, now(), PARTNER) == "wrong_merchant"
    assert rows(db, "SELECT state FROM refunds") == [("submitted",)]
    assert rows(db, "SELECT partner, outcome FROM notifications") == [(PARTNER, "wrong_merchant")]

    again = {**form, "notify_id": "n-2"}
    assert process_notification(db, "batch_refund", again, now(), OTHER) == "applied"
    assert rows(db, "SELECT state FROM refunds") == [("succeeded",)]
    [event] = outbox_events(db)
    assert event["merchant"] == OTHER and event["status"] == "succeeded"
