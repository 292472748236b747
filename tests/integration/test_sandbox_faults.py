"""Each injected fault, seen from the client and in the sandbox's books.

One sandbox serves the module; each test sets the faults it needs through
the control API and clears them afterwards.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import requests

from sandbox.client import SandboxError
from tests.support.sandbox import (
    NotifyReceiver,
    RunningSandbox,
    refund_params,
    run_sandbox,
    submit,
    trade_no,
)
from worker.mapi import RefundItem, SyncStatus, parse_notify, parse_sync_response, verify

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def sandbox() -> Iterator[RunningSandbox]:
    with run_sandbox(time_factor=0.0001, seed=42) as running:
        yield running


@pytest.fixture
def sb(sandbox: RunningSandbox) -> Iterator[RunningSandbox]:
    sandbox.client.clear_faults()
    yield sandbox
    sandbox.client.clear_faults()


@pytest.fixture
def rx() -> Iterator[NotifyReceiver]:
    with NotifyReceiver() as receiver:
        yield receiver


def params(sb: RunningSandbox, **kwargs: Any) -> dict[str, str]:
    return refund_params(md5_key=sb.md5_key, **kwargs)


def status_of(response: requests.Response) -> tuple[SyncStatus, str | None]:
    parsed = parse_sync_response(response.content)
    return parsed.status, parsed.error


def accepted(sb: RunningSandbox, batch_no: str) -> bool:
    return bool(sb.client.ledger(batch_no=batch_no)["batches"])


# -- gateway faults ------------------------------------------------------------------------


def test_http_5xx_before_the_batch_is_taken(sb: RunningSandbox) -> None:
    sb.client.set_faults({"http_5xx": {"count": 1, "status": 502}})
    p = params(sb)
    response = submit(sb, p)
    assert response.status_code == 502
    assert b"<html>" in response.content
    assert not accepted(sb, p["batch_no"])
    assert status_of(submit(sb, p)) == (SyncStatus.ACCEPTED, None)
    assert sb.client.faults()["faults"]["http_5xx"]["remaining"] == 0


def test_http_5xx_after_the_batch_was_taken(sb: RunningSandbox) -> None:
    sb.client.set_faults({"http_5xx": {"count": 1, "accept": True}})
    p = params(sb)
    assert submit(sb, p).status_code == 503
    assert accepted(sb, p["batch_no"])
    assert status_of(submit(sb, p)) == (SyncStatus.REFUSED, "DUPLICATE_BATCH_NO")


def test_hang_past_the_client_timeout_with_the_batch_taken(sb: RunningSandbox) -> None:
    sb.client.set_faults({"hang": {"count": 1, "seconds": 1.0}})
    p = params(sb)
    with pytest.raises(requests.ReadTimeout):
        submit(sb, p, timeout=0.3)
    assert accepted(sb, p["batch_no"])
    assert status_of(submit(sb, p)) == (SyncStatus.REFUSED, "DUPLICATE_BATCH_NO")


def test_hang_without_taking_the_batch(sb: RunningSandbox) -> None:
    sb.client.set_faults({"hang": {"count": 1, "seconds": 0.6, "accept": False}})
    p = params(sb)
    with pytest.raises(requests.ReadTimeout):
        submit(sb, p, timeout=0.2)
    assert not accepted(sb, p["batch_no"])
    assert status_of(submit(sb, p)) == (SyncStatus.ACCEPTED, None)


def test_reset_after_accept_cuts_the_connection_without_an_answer(sb: RunningSandbox) -> None:
    sb.client.set_faults({"reset_after_accept": {"count": 1}})
    p = params(sb)
    with pytest.raises(requests.ConnectionError) as caught:
        submit(sb, p)
    # No HTTP answer at all: the peer reset the connection (RST).
    assert "ConnectionResetError" in repr(caught.value)
    assert accepted(sb, p["batch_no"])
    assert status_of(submit(sb, p)) == (SyncStatus.REFUSED, "DUPLICATE_BATCH_NO")
    assert sb.client.health()


def test_slow_answer_still_accepts(sb: RunningSandbox) -> None:
    sb.client.set_faults({"slow": {"count": 1, "seconds": 0.4}})
    started = time.monotonic()
    assert status_of(submit(sb, params(sb))) == (SyncStatus.ACCEPTED, None)
    assert time.monotonic() - started >= 0.4


def test_lock_error_is_refused_and_the_same_batch_no_passes_later(sb: RunningSandbox) -> None:
    sb.client.set_faults({"lock_error": {"count": 2}})
    p = params(sb)
    assert status_of(submit(sb, p)) == (SyncStatus.REFUSED, "BATCH_REFUND_LOCK_ERROR")
    assert status_of(submit(sb, p)) == (SyncStatus.REFUSED, "BATCH_REFUND_LOCK_ERROR")
    assert status_of(submit(sb, p)) == (SyncStatus.ACCEPTED, None)


def test_sync_item_failure_refuses_every_batch_holding_the_bad_trade(sb: RunningSandbox) -> None:
    bad, good = trade_no(), trade_no()
    sb.client.set_faults({"sync_item_failure": {"code": "TRADE_STATUS_ERROR", "trade_nos": [bad]}})
    both = [RefundItem(good, Decimal("1.00"), ""), RefundItem(bad, Decimal("1.00"), "")]
    assert status_of(submit(sb, params(sb, items=both))) == (
        SyncStatus.REFUSED,
        "TRADE_STATUS_ERROR",
    )
    alone_good = params(sb, items=both[:1])
    assert status_of(submit(sb, alone_good)) == (SyncStatus.ACCEPTED, None)
    assert status_of(submit(sb, params(sb, items=both[1:]))) == (
        SyncStatus.REFUSED,
        "TRADE_STATUS_ERROR",
    )
    assert sb.client.ledger(trade_no=bad)["trades"] == {}


def test_notify_verify_can_fail_too(sb: RunningSandbox) -> None:
    sb.client.set_faults({"http_5xx": {"count": 1, "service": "notify_verify"}})
    query = {"service": "notify_verify", "partner": sb.partner, "notify_id": "x"}
    assert requests.get(sb.gateway_url, params=query, timeout=5).status_code == 503
    assert requests.get(sb.gateway_url, params=query, timeout=5).text == "false"


# -- notification faults ----------------------------------------------------------------------


def test_item_failure_shows_in_result_details_and_is_not_executed(
    sb: RunningSandbox, rx: NotifyReceiver
) -> None:
    bad, good = trade_no(), trade_no()
    sb.client.set_faults(
        {"item_failure": {"code": "SELLER_BALANCE_NOT_ENOUGH", "trade_nos": [bad]}}
    )
    items = [RefundItem(good, Decimal("1.00"), ""), RefundItem(bad, Decimal("2.00"), "")]
    p = params(sb, items=items, notify_url=rx.url)
    assert status_of(submit(sb, p)) == (SyncStatus.ACCEPTED, None)
    notify = parse_notify(rx.wait_for(1)[0].form or {})
    assert [(i.trade_no, i.code) for i in notify.items] == [
        (good, "SUCCESS"),
        (bad, "SELLER_BALANCE_NOT_ENOUGH"),
    ]
    assert notify.success_num == 1
    trades = sb.client.ledger(batch_no=p["batch_no"])["trades"]
    assert trades[bad]["executions"] == []
    assert len(trades[good]["executions"]) == 1


def test_notify_lost_skips_one_delivery_and_the_schedule_goes_on(
    sb: RunningSandbox, rx: NotifyReceiver
) -> None:
    sb.client.set_faults({"notify_lost": {"count": 1}})
    p = params(sb, notify_url=rx.url)
    submit(sb, p)
    sb.client.wait_idle(15)
    assert len(rx.snapshot()) == 1
    (note,) = sb.client.ledger(batch_no=p["batch_no"])["notifications"].values()
    assert (note["attempts"], note["lost"], note["sent"], note["acknowledged"]) == (2, 1, 1, True)


def test_notify_duplicate_posts_the_same_notification_twice(
    sb: RunningSandbox, rx: NotifyReceiver
) -> None:
    sb.client.set_faults({"notify_duplicate": {"count": 1}})
    p = params(sb, notify_url=rx.url)
    submit(sb, p)
    sb.client.wait_idle(15)
    first, second = rx.wait_for(2)
    assert first.body == second.body
    (note,) = sb.client.ledger(batch_no=p["batch_no"])["notifications"].values()
    assert (note["attempts"], note["sent"], note["duplicates"]) == (1, 2, 1)


def test_notify_reorder_sends_a_notification_after_a_later_one(
    sb: RunningSandbox, rx: NotifyReceiver
) -> None:
    sb.client.set_faults({"notify_reorder": {"count": 1, "after": 1, "max_hold_seconds": 10}})
    first, second = params(sb, notify_url=rx.url), params(sb, notify_url=rx.url)
    submit(sb, first)
    time.sleep(0.1)  # the first notification is now held
    assert rx.snapshot() == []
    submit(sb, second)
    got = rx.wait_for(2)
    assert [(r.form or {})["batch_no"] for r in got] == [second["batch_no"], first["batch_no"]]
    sb.client.wait_idle(15)


def test_notify_bad_sign_sends_a_forged_copy_first(sb: RunningSandbox, rx: NotifyReceiver) -> None:
    sb.client.set_faults({"notify_bad_sign": {"count": 1}})
    sb.client.create_trade(closed := trade_no(), "5.00", "closed")
    items = [RefundItem(closed, Decimal("1.00"), ""), RefundItem(trade_no(), Decimal("1.00"), "")]
    p = params(sb, items=items, notify_url=rx.url)
    submit(sb, p)
    sb.client.wait_idle(15)
    forged, genuine = rx.wait_for(2)
    assert forged.form is not None and genuine.form is not None
    assert forged.form["notify_id"] == genuine.form["notify_id"]
    assert not verify(forged.form, charset="utf-8", md5_key=sb.md5_key)
    assert verify(genuine.form, charset="utf-8", md5_key=sb.md5_key)
    assert parse_notify(forged.form).success_num == 2  # the forgery claims everything succeeded
    assert parse_notify(genuine.form).success_num == 1
    (note,) = sb.client.ledger(batch_no=p["batch_no"])["notifications"].values()
    assert (note["forged_sent"], note["forged_acknowledged"], note["acknowledged"]) == (1, 1, True)


# -- control of faults and of the clock ---------------------------------------------------------


def test_fault_api_validates_reports_and_clears(sb: RunningSandbox) -> None:
    with pytest.raises(SandboxError) as caught:
        sb.client.set_faults({"http_5xx": {"rate": 2}})
    assert caught.value.status == 400 and "rate" in caught.value.message
    with pytest.raises(SandboxError):
        sb.client.set_faults({"meteor": {}})
    sb.client.set_faults({"slow": {"rate": 1.0, "seconds": 0.0}, "seed": 5})
    submit(sb, params(sb))
    snapshot = sb.client.faults()
    assert snapshot["faults"]["slow"]["fired"] == 1 and snapshot["seed"] == 5
    assert sb.client.summary()["faults_fired"]["slow"] >= 1
    assert sb.client.clear_faults()["faults"] == {}


def test_clock_offset_moves_the_gateway_to_another_day(
    sb: RunningSandbox, rx: NotifyReceiver
) -> None:
    tomorrow = datetime.now(UTC) + timedelta(days=1)
    try:
        view = sb.client.set_clock_offset(86400)
        assert view["offset_seconds"] == 86400
        today = params(sb)
        assert status_of(submit(sb, today)) == (SyncStatus.REFUSED, "REFUND_DATE_ERROR")
        late = params(sb, now=tomorrow, notify_url=rx.url)
        assert status_of(submit(sb, late)) == (SyncStatus.ACCEPTED, None)
        form = rx.wait_for(1)[0].form or {}
        assert (
            parse_notify(form).notified_at.date()
            == tomorrow.astimezone(parse_notify(form).notified_at.tzinfo).date()
        )
    finally:
        sb.client.set_clock_offset(0)
    with pytest.raises(SandboxError):
        sb.client.set_clock_offset(1e12)
