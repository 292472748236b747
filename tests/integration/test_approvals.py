"""The password channel's approval rules against a real ledger (PostgreSQL)."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from tests.support.ledger import (
    PARTNER,
    delivery,
    handle_deliveries,
    notify_form,
    outbox_events,
    request,
    rows,
    trade,
)
from worker.adapters.postgres import ledger
from worker.adapters.postgres.pool import Database
from worker.domain.merchants import MerchantProfile, Merchants
from worker.mapi import SERVICE_PWD, Merchant
from worker.services.approvals import (
    ApprovalRefused,
    approval_queue,
    approval_sheet,
    approve_batch,
    expire_unapproved,
    reject_batch,
)
from worker.services.notifications import process_notification
from worker.services.operators import resolve_batch
from worker.services.packing import pack_pending
from worker.services.ports import QueryResult
from worker.services.reconciler import APPROVED_NOT_NOTIFIED, reconcile_batch
from worker.services.submission import submit_batch

pytestmark = pytest.mark.integration

GATEWAY = "http://127.0.0.1:9/gateway.do"
# 12:00 in Beijing on 2026-11-22.
NOON = datetime(2026, 11, 22, 4, 0, tzinfo=UTC)


def pwd_merchants(**seller: str) -> Merchants:
    gateway = Merchant(
        partner=PARTNER,
        charset="utf-8",
        sign_type="MD5",
        md5_key="k" * 32,
        notify_url="http://127.0.0.1:8080/alipay/notify",
        dback_notify_url="http://127.0.0.1:8080/alipay/dback-notify",
    )
    return Merchants([MerchantProfile(id="shop", gateway=gateway, service="pwd", **seller)])


MERCHANTS = pwd_merchants()


def waiting_batch(db: Database, count: int = 3, *, prefix: str = "p") -> str:
    reasons = ["it's \"fine\" <b>& ^|$#", "质量问题", None]
    handle_deliveries(
        db,
        [
            delivery(
                request(
                    f"{prefix}-{i}",
                    trade(i),
                    "2.50",
                    order_id=f"o-{i}",
                    **({"reason": reasons[i % 3]} if reasons[i % 3] else {}),
                )
            )
            for i in range(count)
        ],
        MERCHANTS,
    )
    created = pack_pending(
        db, max_items=1000, max_wait=3600, merchants=MERCHANTS, clock=lambda: NOON, force=True
    )
    assert created == []  # nothing to submit: it waits for an operator
    ((batch_no,),) = rows(db, "SELECT batch_no FROM batches WHERE state = 'awaiting_approval'")
    return str(batch_no)


def approve(db: Database, batch_no: str, operator: str = "alice") -> dict[str, str]:
    form = approve_batch(
        db, MERCHANTS, batch_no, operator=operator, gateway_url=GATEWAY, clock=lambda: NOON
    )
    return form.params


def test_a_batch_of_the_password_service_waits_for_approval_and_is_never_submitted(
    db: Database,
) -> None:
    batch_no = waiting_batch(db)
    result = submit_batch(
        db, lambda _m: pytest.fail("nothing may be sent"), MERCHANTS, batch_no,
        clock=lambda: NOON, lease_seconds=1,
    )
    assert result.status == "awaiting_approval"
    (entry,) = approval_queue(db, MERCHANTS)
    assert (entry.batch_no, entry.state, entry.items, str(entry.total)) == (
        batch_no, "awaiting_approval", 3, "7.50",
    )
    assert entry.seller == PARTNER and entry.merchant_id == "shop"
    assert entry.deadline == datetime(2026, 11, 22, 16, 0, tzinfo=UTC)  # Beijing midnight
    assert rows(db, "SELECT DISTINCT state FROM refunds") == [("batched",)]


def test_the_sheet_shows_each_item_as_sent_with_safe_reasons_marked(db: Database) -> None:
    batch_no = waiting_batch(db)
    sheet = approval_sheet(db, MERCHANTS, batch_no)
    assert sheet is not None
    by_id = {i.refund_id: i for i in sheet.items}
    assert by_id["p-0"].made_safe  # ^ | $ # and quotes are not what the gateway takes as-is
    assert by_id["p-1"].reason_sent == "质量问题" and not by_id["p-1"].made_safe
    assert not by_id["p-2"].made_safe  # the default reason
    assert (by_id["p-0"].order_id, by_id["p-0"].trade_count, str(by_id["p-0"].trade_total)) == (
        "o-0", 1, "2.50",
    )
    assert approval_sheet(db, MERCHANTS, "20261122nope") is None


def test_approval_signs_the_password_request_once_and_records_who(db: Database) -> None:
    batch_no = waiting_batch(db)
    params = approve(db, batch_no)
    assert params["service"] == SERVICE_PWD
    assert params["seller_user_id"] == PARTNER
    assert params["notify_url"] == "http://127.0.0.1:8080/alipay/notify"
    for absent in ("dback_notify_url", "use_freeze_amount", "return_type", "seller_email"):
        assert absent not in params
    assert params["batch_num"] == "3" and params["sign_type"] == "MD5" and params["sign"]
    state, maybe_sent, attempts, who = rows(
        db, "SELECT state, maybe_sent, attempts, approved_by FROM batches"
    )[0]
    assert (state, maybe_sent, attempts, who) == ("approved", True, 1, "alice")
    assert rows(db, "SELECT decision, operator FROM operator_decisions") == [("approved", "alice")]

    with pytest.raises(ApprovalRefused, match="approved already by alice"):
        approve(db, batch_no, operator="bob")
    with pytest.raises(ApprovalRefused, match="only a batch awaiting approval"):
        reject_batch(db, batch_no, operator="bob", reason="no", clock=lambda: NOON)


def test_the_seller_email_is_sent_when_configured_and_the_user_id_wins_over_it(
    db: Database,
) -> None:
    assert pwd_merchants(seller_email="shop@example.com").default.seller() == (
        None, "shop@example.com",
    )
    both = pwd_merchants(seller_email="shop@example.com", seller_user_id="2088000000000777")
    assert both.default.seller() == ("2088000000000777", None)


def test_two_operators_at_once_never_approve_one_batch_twice(db: Database) -> None:
    batch_no = waiting_batch(db)
    outcomes: list[str] = []
    start = threading.Barrier(4)

    def run(name: str) -> None:
        start.wait()
        try:
            approve(db, batch_no, operator=name)
            outcomes.append("approved")
        except ApprovalRefused:
            outcomes.append("refused")

    threads = [threading.Thread(target=run, args=(f"op{n}",)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes) == ["approved", "refused", "refused", "refused"]
    assert rows(db, "SELECT count(*) FROM operator_decisions") == [(1,)]


def test_a_rejected_batch_ends_its_refunds_rejected_with_their_events(db: Database) -> None:
    batch_no = waiting_batch(db)
    with pytest.raises(ApprovalRefused, match="reason"):
        reject_batch(db, batch_no, operator="alice", reason="  ", clock=lambda: NOON)
    assert reject_batch(db, batch_no, operator="alice", reason="dup", clock=lambda: NOON) == 3
    assert rows(db, "SELECT DISTINCT state, code, result_source FROM refunds") == [
        ("rejected", "OPERATOR_REJECTED", "operator")
    ]
    assert rows(db, "SELECT state FROM batches") == [("rejected",)]
    events = outbox_events(db)
    assert sorted(e["refund_id"] for e in events) == ["p-0", "p-1", "p-2"]
    assert {(e["status"], e["code"], e["batch_no"]) for e in events} == {
        ("rejected", "OPERATOR_REJECTED", batch_no)
    }
    # A notification for it (it was never rendered, so never sent) is flagged, not applied.
    form = notify_form(batch_no, [(trade(0), "2.50", "SUCCESS")], notify_id="n-rej")
    assert process_notification(db, "batch_refund", form, NOON) == "for_released_batch"
    assert len(outbox_events(db)) == 3


def test_a_batch_not_approved_on_its_day_is_packed_again_under_a_new_number(
    db: Database,
) -> None:
    batch_no = waiting_batch(db)
    tomorrow = NOON + timedelta(days=1)
    with pytest.raises(ApprovalRefused, match="can no longer be sent"):
        approve_batch(
            db, MERCHANTS, batch_no, operator="a", gateway_url=GATEWAY, clock=lambda: tomorrow
        )
    assert rows(db, "SELECT state FROM batches") == [("abandoned",)]
    assert rows(db, "SELECT DISTINCT state FROM refunds") == [("pending",)]
    pack_pending(
        db, max_items=1000, max_wait=3600, merchants=MERCHANTS, clock=lambda: tomorrow, force=True
    )
    (entry,) = approval_queue(db, MERCHANTS)
    assert entry.batch_no != batch_no and entry.batch_no.startswith("20261123")


def test_the_sweep_expires_only_batches_of_a_past_day(db: Database) -> None:
    batch_no = waiting_batch(db)
    assert expire_unapproved(db, clock=lambda: NOON) == []
    assert expire_unapproved(db, clock=lambda: NOON + timedelta(hours=12)) == [batch_no]
    assert rows(db, "SELECT DISTINCT state FROM refunds") == [("pending",)]


class _NotFound:
    def query_refunds(self, *, batch_no: str | None = None, trade_no: str | None = None):  # type: ignore[no-untyped-def]
        return QueryResult("not_found", "REFUND_NOT_EXIST")


def test_an_approved_batch_the_gateway_shows_nothing_for_is_flagged_never_released(
    db: Database,
) -> None:
    batch_no = waiting_batch(db)
    approve(db, batch_no)
    later = datetime.now(UTC) + timedelta(minutes=5)  # after the attempt (database time)
    for _ in range(3):
        report = reconcile_batch(
            db, lambda _p: _NotFound(), batch_no, clock=lambda: later, release_after_seconds=0
        )
    assert report.state_after == "approved"
    assert rows(db, "SELECT state, operator_flag FROM batches") == [
        ("approved", APPROVED_NOT_NOTIFIED)
    ]
    assert rows(db, "SELECT DISTINCT state FROM refunds") == [("batched",)]
    # The operator's decision, with its guards (day over, the query says not found).
    resolution = resolve_batch(
        db, lambda _p: _NotFound(), batch_no, decision="not_accepted", operator="alice",
        reason="never posted", force=False, clock=lambda: later,
    )
    assert (resolution.state_before, resolution.state_after) == ("approved", "released")
    assert rows(db, "SELECT DISTINCT state FROM refunds") == [("pending",)]


def test_the_notification_of_an_approved_batch_completes_it(db: Database) -> None:
    batch_no = waiting_batch(db)
    approve(db, batch_no)
    form = notify_form(
        batch_no,
        [(trade(0), "2.50", "SUCCESS"), (trade(1), "2.50", "SUCCESS"),
         (trade(2), "2.50", "TRADE_HAS_CLOSED")],
    )
    assert process_notification(db, "batch_refund", form, NOON) == "applied"
    assert rows(db, "SELECT state FROM batches") == [("completed",)]
    assert sorted(rows(db, "SELECT state, count(*) FROM refunds GROUP BY state")) == [
        ("failed", 1), ("succeeded", 2),
    ]
    assert len(outbox_events(db)) == 3


def test_a_merchant_moved_to_the_password_service_keeps_its_unsent_batch_for_approval(
    db: Database,
) -> None:
    nopwd = Merchants([replace(MERCHANTS.default, service="nopwd")])
    handle_deliveries(db, [delivery(request("m-1", trade(1)))], nopwd)
    (batch_no,) = pack_pending(
        db, max_items=1000, max_wait=3600, merchants=nopwd, clock=lambda: NOON, force=True
    )
    result = submit_batch(
        db, lambda _m: pytest.fail("nothing may be sent"), MERCHANTS, batch_no,
        clock=lambda: NOON, lease_seconds=1,
    )
    assert result.status == "awaiting_approval"
    with db.transaction() as conn:
        batch = ledger.lock_batch(conn, batch_no)
    assert batch is not None and (batch.state, batch.service) == ("awaiting_approval", "pwd")


def test_approval_writes_the_auto_submitting_page_in_the_same_step(db: Database) -> None:
    batch_no = waiting_batch(db)
    form = approve_batch(
        db, MERCHANTS, batch_no, operator="alice", gateway_url=GATEWAY, clock=lambda: NOON,
        script_src="/static/autosubmit.js",
    )
    page = form.page.decode("utf-8")
    assert 'action="http://127.0.0.1:9/gateway.do?_input_charset=utf-8"' in page
    assert '<script src="/static/autosubmit.js"></script>' in page
    assert f'name="batch_no" value="{batch_no}"' in page
    assert "sign" not in repr(form)  # neither the signature nor the page in a repr
