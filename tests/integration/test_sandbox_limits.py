"""The 99-refund limit of a trade in both modes, and refunds made outside any batch."""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal

import pytest

from sandbox.client import SandboxError
from tests.support.sandbox import (
    NotifyReceiver,
    RunningSandbox,
    query,
    query_answer,
    query_items,
    query_params,
    refund_params,
    run_sandbox,
    submit,
    trade_no,
)
from worker.mapi import RefundItem, SyncStatus, parse_sync_response, verify

pytestmark = pytest.mark.integration

NOT_EXIST = {"is_success": "F", "error_code": "REFUND_NOT_EXIST"}


@pytest.fixture(scope="module")
def sandbox() -> Iterator[RunningSandbox]:
    with run_sandbox(time_factor=0.0001) as running:
        yield running


@pytest.fixture
def sb(sandbox: RunningSandbox) -> Iterator[RunningSandbox]:
    sandbox.client.set_refund_limit_mode("refuse")
    yield sandbox
    sandbox.client.set_refund_limit_mode("refuse")


def refund(sb: RunningSandbox, url: str, *items: tuple[str, str]) -> str:
    rows = [RefundItem(t, Decimal(a), "退款") for t, a in items]
    params = refund_params(md5_key=sb.md5_key, items=rows, notify_url=url)
    assert parse_sync_response(submit(sb, params).content).status is SyncStatus.ACCEPTED
    return params["batch_no"]


def ask(
    sb: RunningSandbox, *, batch_no: str | None = None, trade_no: str | None = None
) -> dict[str, str]:
    params = query_params(md5_key=sb.md5_key, batch_no=batch_no, trade_no=trade_no)
    return query_answer(query(sb, params))


def at_the_limit(sb: RunningSandbox) -> str:
    """A trade refunded 99 times already, outside any batch."""
    t = trade_no()
    sb.client.create_trade(t, "1000.00")
    made = sb.client.add_external_refunds(t, 99, "1.00")
    assert len(made["batch_nos"]) == 99
    assert made["trade"]["refund_count"] == 99
    return t


def test_external_refunds_get_their_own_batch_numbers(sb: RunningSandbox) -> None:
    t = trade_no()
    made = sb.client.add_external_refunds(t, 3, "2.50", reason="console")
    batch_nos = made["batch_nos"]
    assert len(set(batch_nos)) == 3
    today = sb.client.clock()["beijing_date"].replace("-", "")
    assert all(b.startswith(f"{today}EXT") and 11 <= len(b) <= 32 for b in batch_nos)
    assert made["trade"]["refunded"] == "7.50"
    assert [e["batch_no"] for e in sb.client.ledger(trade_no=t)["trades"][t]["executions"]] == (
        batch_nos
    )
    assert [i[0] for i in query_items(ask(sb, trade_no=t))] == batch_nos
    assert sb.client.summary()["external_refunds"] >= 3


def test_external_refunds_are_refused_beyond_the_limits(sb: RunningSandbox) -> None:
    t = trade_no()
    sb.client.create_trade(t, "10.00")
    with pytest.raises(SandboxError, match="paid amount"):
        sb.client.add_external_refunds(t, 3, "4.00")
    sb.client.add_external_refunds(t, 98, "0.01")
    with pytest.raises(SandboxError, match="exceed 99"):
        sb.client.add_external_refunds(t, 2, "0.01")
    closed = trade_no()
    sb.client.create_trade(closed, "10.00", status="closed")
    with pytest.raises(SandboxError, match="closed"):
        sb.client.add_external_refunds(closed, 1, "1.00")
    assert sb.client.ledger(trade_no=t)["trades"][t]["refund_count"] == 98


def test_external_refunds_count_toward_the_paid_amount(sb: RunningSandbox) -> None:
    t = trade_no()
    sb.client.create_trade(t, "10.00")
    sb.client.add_external_refunds(t, 1, "9.50")
    with NotifyReceiver() as rx:
        batch_no = refund(sb, rx.url, (t, "1.00"))
        (got,) = rx.wait_for(1)
    assert (got.form or {})["result_details"] == f"{t}^1.00^REFUND_AMOUNT_NOT_VALID"
    assert query_items(ask(sb, batch_no=batch_no)) == [
        (batch_no, t, "1.00", "REFUND_AMOUNT_NOT_VALID")
    ]


def test_refuse_mode_fails_the_hundredth_refund(sb: RunningSandbox) -> None:
    t = at_the_limit(sb)
    with NotifyReceiver() as rx:
        batch_no = refund(sb, rx.url, (t, "1.00"))
        (got,) = rx.wait_for(1)
    form = got.form or {}
    assert (form["result_details"], form["success_num"]) == (f"{t}^1.00^TRADE_STATUS_ERROR", "0")
    items = query_items(ask(sb, trade_no=t))
    assert len(items) == 100
    assert items[-1] == (batch_no, t, "1.00", "TRADE_STATUS_ERROR")


def test_skip_mode_leaves_the_hundredth_refund_out(sb: RunningSandbox) -> None:
    assert sb.client.set_refund_limit_mode("skip")["refund_limit_mode"] == "skip"
    t, fresh = at_the_limit(sb), trade_no()
    with NotifyReceiver() as rx:
        batch_no = refund(sb, rx.url, (t, "1.00"), (fresh, "2.00"))
        (got,) = rx.wait_for(1)
        sb.client.wait_idle(10)
    form = got.form or {}
    assert verify(form, charset="utf-8", md5_key=sb.md5_key)
    assert (form["result_details"], form["success_num"]) == (f"{fresh}^2.00^SUCCESS", "1")
    (batch,) = sb.client.ledger(batch_no=batch_no)["batches"]
    assert [i["code"] for i in batch["items"]] == ["skipped", "SUCCESS"]
    assert sb.client.ledger(trade_no=t)["trades"][t]["refund_count"] == 99
    assert query_items(ask(sb, batch_no=batch_no)) == [(batch_no, fresh, "2.00", "SUCCESS")]
    assert all(b != batch_no for b, *_ in query_items(ask(sb, trade_no=t)))
    assert ask(sb, batch_no=batch_no, trade_no=t) == NOT_EXIST


def test_skip_mode_a_batch_of_only_skipped_items_is_never_notified(sb: RunningSandbox) -> None:
    sb.client.set_refund_limit_mode("skip")
    first, second = at_the_limit(sb), at_the_limit(sb)
    with NotifyReceiver() as rx:
        batch_no = refund(sb, rx.url, (first, "1.00"), (second, "1.00"))
        sb.client.wait_idle(10)
        time.sleep(0.5)  # first delivery would be due after 0.1 ms
        assert rx.snapshot() == []
    view = sb.client.ledger(batch_no=batch_no)
    assert view["notifications"] == {}
    assert view["batches"][0]["notify_id"] is None
    assert ask(sb, batch_no=batch_no) == NOT_EXIST


def test_the_mode_is_switched_through_the_settings(sb: RunningSandbox) -> None:
    assert sb.client.settings() == {
        "refund_limit_mode": "refuse",
        "notify_verify_seconds": 60.0,
        "payment_password_default": True,
        "openapi_answer_shapes": "plain",
        "openapi_coupon_status": "SUCCESS",
    }
    with pytest.raises(SandboxError, match="refund_limit_mode"):
        sb.client.set_refund_limit_mode("ignore")
    with pytest.raises(SandboxError):
        sb.client.update_settings()
    assert sb.client.info()["refund_limit_mode"] == "refuse"


def test_skip_mode_from_the_command_line_and_external_refunds_survive_a_restart() -> None:
    with run_sandbox(time_factor=0.0001, refund_limit_mode="skip") as first:
        assert first.client.settings()["refund_limit_mode"] == "skip"
        t = at_the_limit(first)
        state = first.state_dir
        first.stop()
        with run_sandbox(state_dir=state, time_factor=0.0001) as second:
            assert second.client.settings()["refund_limit_mode"] == "refuse"
            assert second.client.ledger(trade_no=t)["trades"][t]["refund_count"] == 99
            items = query_items(ask(second, trade_no=t))
            assert len(items) == 99 and all("EXT" in b for b, *_ in items)
