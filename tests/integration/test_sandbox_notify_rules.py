"""notify_verify expiry, notifications never sent, and result_details in other legal shapes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal

import pytest
import requests

from tests.support.sandbox import (
    NotifyReceiver,
    ReceivedNotify,
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

VERIFY_SECONDS = 0.5
FACTOR = 0.01  # first resend 2.4 s after the first delivery: past the verify window


@pytest.fixture(scope="module")
def sandbox() -> Iterator[RunningSandbox]:
    with run_sandbox(
        time_factor=FACTOR, process_delay=0.0, notify_verify_seconds=VERIFY_SECONDS
    ) as running:
        yield running


@pytest.fixture
def sb(sandbox: RunningSandbox) -> Iterator[RunningSandbox]:
    sandbox.client.clear_faults()
    yield sandbox
    sandbox.client.clear_faults()


def submit_batch(sb: RunningSandbox, url: str, *items: tuple[str, str]) -> str:
    rows = [RefundItem(t, Decimal(a), "退款") for t, a in items] or None
    params = refund_params(md5_key=sb.md5_key, items=rows, notify_url=url)
    assert parse_sync_response(submit(sb, params).content).status is SyncStatus.ACCEPTED
    return params["batch_no"]


def notify_verify(sb: RunningSandbox, notify_id: str) -> str:
    params = {"service": "notify_verify", "partner": sb.partner, "notify_id": notify_id}
    return requests.get(sb.gateway_url, params=params, timeout=5).text


def read_back(details: str) -> list[tuple[str, Decimal, str]]:
    """Trade parts per the official grammar: entries by `#`, then `$$`, `|`, `$` cut away."""
    out = []
    for entry in filter(None, details.split("#")):
        trade_part = entry.split("$$")[0].split("|")[0].partition("$")[0]
        t, a, c = trade_part.split("^")
        out.append((t, Decimal(a), c))
    return out


# -- notify_verify ------------------------------------------------------------------


def test_notify_verify_expires_after_the_latest_attempt(sb: RunningSandbox) -> None:
    during: list[str] = []

    def verify_then(received: ReceivedNotify, index: int) -> bytes:
        during.append(notify_verify(sb, (received.form or {})["notify_id"]))
        return b"fail" if index == 0 else b"success"

    assert sb.client.settings()["notify_verify_seconds"] == VERIFY_SECONDS
    with NotifyReceiver(answer=verify_then) as rx:
        submit_batch(sb, rx.url)
        (first,) = rx.wait_for(1)
        notify_id = (first.form or {})["notify_id"]
        time.sleep(VERIFY_SECONDS + 0.3)
        expired = notify_verify(sb, notify_id)
        rx.wait_for(2, timeout=10)  # the resend makes it verifiable again
        sb.client.wait_idle(10)
    assert during == ["true", "true"]
    assert expired == "false"
    assert notify_verify(sb, notify_id) == "false"  # acknowledged


def test_notify_verify_window_is_a_run_time_setting(sb: RunningSandbox) -> None:
    answers: list[str] = []

    def late_verify(received: ReceivedNotify, _index: int) -> bytes:
        time.sleep(0.3)
        answers.append(notify_verify(sb, (received.form or {})["notify_id"]))
        return b"success"

    sb.client.update_settings(notify_verify_seconds=0.1)
    try:
        with NotifyReceiver(answer=late_verify) as rx:
            submit_batch(sb, rx.url)
            rx.wait_for(1)
            sb.client.wait_idle(10)
    finally:
        sb.client.update_settings(notify_verify_seconds=VERIFY_SECONDS)
    assert answers[0] == "false"


def test_success_crlf_acknowledges(sb: RunningSandbox) -> None:
    with NotifyReceiver(answer=lambda _r, _i: b"success\r\n") as rx:
        batch_no = submit_batch(sb, rx.url)
        sb.client.wait_idle(10)
        assert len(rx.snapshot()) == 1
    (note,) = sb.client.ledger(batch_no=batch_no)["notifications"].values()
    assert note["acknowledged"] is True


# -- notify_never --------------------------------------------------------------------


def test_notify_never_sends_nothing_for_the_drawn_batch(sb: RunningSandbox) -> None:
    sb.client.set_faults({"notify_never": {"count": 1}})
    t1, t2 = trade_no(), trade_no()
    with NotifyReceiver() as rx:
        silent = submit_batch(sb, rx.url, (t1, "1.00"))
        notified = submit_batch(sb, rx.url, (t2, "1.00"))
        (got,) = rx.wait_for(1)
        sb.client.wait_idle(10)
        time.sleep(0.3)
        assert len(rx.snapshot()) == 1
    assert (got.form or {})["batch_no"] == notified
    view = sb.client.ledger(batch_no=silent)
    assert view["notifications"] == {} and view["batches"][0]["success_num"] == 1
    assert sb.client.faults()["faults"]["notify_never"]["fired"] == 1
    # Only the query tells what happened to the silent batch.
    answer = query_answer(query(sb, query_params(md5_key=sb.md5_key, batch_no=silent)))
    assert query_items(answer) == [(silent, t1, "1.00", "SUCCESS")]


# -- result_shapes -------------------------------------------------------------------


def test_result_shapes_carry_the_same_results(sb: RunningSandbox) -> None:
    sb.client.set_faults({"result_shapes": {}})
    closed = trade_no()
    sb.client.create_trade(closed, "10.00", status="closed")
    amounts = ["5.00", "0.50", "1.23", "2.10", "7.00", "0.01", "3.30", "9.00"]
    items = [(trade_no(), a) for a in amounts] + [(closed, "1.00")]
    with NotifyReceiver(answer=lambda _r, i: b"fail" if i == 0 else b"success") as rx:
        batch_no = submit_batch(sb, rx.url, *items)
        got = rx.wait_for(2, timeout=10)
        sb.client.wait_idle(10)
    forms = [r.form or {} for r in got]
    texts = {f["result_details"] for f in forms}
    assert len(texts) == 1  # the same text on every delivery
    (details,) = texts
    assert all(verify(f, charset="utf-8", md5_key=sb.md5_key) for f in forms)
    (batch,) = sb.client.ledger(batch_no=batch_no)["batches"]
    expected = [(i["trade_no"], Decimal(i["amount"]), i["code"]) for i in batch["items"]]
    assert read_back(details) == expected
    assert expected[-1][2] == "TRADE_HAS_CLOSED"
    assert forms[0]["success_num"] == "8"
    assert details != "#".join(f"{t}^{a}^{c}" for t, a, c in expected)  # not the plain shape


def test_result_shapes_with_odd_failure_codes(sb: RunningSandbox) -> None:
    sb.client.set_faults({"result_shapes": {"odd_codes": ["REFUND_CHARGE_ERROR_X"]}})
    closed, paid = trade_no(), trade_no()
    sb.client.create_trade(closed, "10.00", status="closed")
    with NotifyReceiver() as rx:
        batch_no = submit_batch(sb, rx.url, (paid, "1.00"), (closed, "1.00"))
        (got,) = rx.wait_for(1)
    results = read_back((got.form or {})["result_details"])
    assert [(t, c) for t, _, c in results] == [
        (paid, "SUCCESS"),
        (closed, "REFUND_CHARGE_ERROR_X"),
    ]
    answer = query_answer(query(sb, query_params(md5_key=sb.md5_key, batch_no=batch_no)))
    assert [i[3] for i in query_items(answer)] == ["SUCCESS", "REFUND_CHARGE_ERROR_X"]


def test_result_shapes_survive_a_restart() -> None:
    """The shape seed is journaled with the batch: a resend after a restart says the same."""
    with run_sandbox(time_factor=FACTOR, process_delay=0.0) as first:
        first.client.set_faults({"result_shapes": {}})
        with NotifyReceiver(answer=lambda _r, _i: b"fail") as rx:
            items = [(trade_no(), "5.00"), (trade_no(), "0.50"), (trade_no(), "1.00")]
            submit_batch(first, rx.url, *items)
            (before,) = rx.wait_for(1)
            first.stop()
            with run_sandbox(state_dir=first.state_dir, time_factor=FACTOR) as second:
                again = rx.wait_for(2, timeout=15)[1]
                second.client.clear_faults()
    assert (again.form or {})["result_details"] == (before.form or {})["result_details"]
    assert (again.form or {})["notify_id"] == (before.form or {})["notify_id"]
