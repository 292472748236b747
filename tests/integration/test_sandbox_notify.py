"""Notification delivery over time: the resend schedule, giving up, and surviving restarts."""

from __future__ import annotations

import itertools
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox.protocol import RESEND_GAPS
from tests.support.sandbox import (
    NotifyReceiver,
    ReceivedNotify,
    RunningSandbox,
    refund_params,
    run_sandbox,
    submit,
    trade_no,
)
from worker.mapi import SyncStatus, parse_notify, parse_sync_response, verify

pytestmark = pytest.mark.integration

FACTOR = 0.00005  # the whole 24h22m schedule takes about 4.4 s


@pytest.fixture(scope="module")
def sandbox() -> Iterator[RunningSandbox]:
    with run_sandbox(time_factor=FACTOR) as running:
        yield running


def fail_then_succeed(failures: int) -> Any:
    def answer(_received: ReceivedNotify, index: int) -> bytes:
        return b"fail" if index < failures else b"success"

    return answer


def gaps(received: list[ReceivedNotify]) -> list[float]:
    return [b.at - a.at for a, b in itertools.pairwise(received)]


def test_resends_until_success_on_the_scaled_schedule(sandbox: RunningSandbox) -> None:
    with NotifyReceiver(answer=fail_then_succeed(4)) as rx:
        params = refund_params(md5_key=sandbox.md5_key, notify_url=rx.url)
        submit(sandbox, params)
        sandbox.client.wait_idle(10)
        got = rx.snapshot()
    assert len(got) == 5
    forms = [r.form or {} for r in got]
    assert len({f["notify_id"] for f in forms}) == 1  # the same notification each time
    assert all(verify(f, charset="utf-8", md5_key=sandbox.md5_key) for f in forms)
    assert {f["result_details"] for f in forms} == {forms[0]["result_details"]}
    for measured, expected in zip(gaps(got), RESEND_GAPS, strict=False):
        assert expected * FACTOR - 0.005 <= measured <= expected * FACTOR + 0.25
    (note,) = sandbox.client.ledger(batch_no=params["batch_no"])["notifications"].values()
    assert (note["attempts"], note["sent"], note["acknowledged"]) == (5, 5, True)


def test_only_success_acknowledges(sandbox: RunningSandbox) -> None:
    replies = [b"SUCCESS", b"Success\r\n", b"<html>success</html>", b"success!", b"success"]
    with NotifyReceiver(answer=lambda _r, i: replies[i]) as rx:
        params = refund_params(md5_key=sandbox.md5_key, notify_url=rx.url)
        submit(sandbox, params)
        sandbox.client.wait_idle(10)
        assert len(rx.snapshot()) == 5


@pytest.mark.parametrize("reply", [b"success\r\n", b"success\n", b" success \t", b"\r\nsuccess"])
def test_success_with_surrounding_whitespace_acknowledges(
    sandbox: RunningSandbox, reply: bytes
) -> None:
    """Alipay's Java demo answers `println("success")`: the line break is part of the body."""
    with NotifyReceiver(answer=lambda _r, _i: reply) as rx:
        params = refund_params(md5_key=sandbox.md5_key, notify_url=rx.url)
        submit(sandbox, params)
        sandbox.client.wait_idle(10)
        assert len(rx.snapshot()) == 1
    (note,) = sandbox.client.ledger(batch_no=params["batch_no"])["notifications"].values()
    assert (note["attempts"], note["acknowledged"]) == (1, True)


def test_gives_up_after_eight_unanswered_deliveries(sandbox: RunningSandbox) -> None:
    dead_end = refund_params(md5_key=sandbox.md5_key, notify_url="http://127.0.0.1:9/alipay/notify")
    submit(sandbox, dead_end)  # nothing listens there: no answer at all
    with NotifyReceiver(answer=lambda _r, _i: b"fail") as rx:
        params = refund_params(md5_key=sandbox.md5_key, notify_url=rx.url)
        submit(sandbox, params)
        summary = sandbox.client.wait_idle(15)
        got = rx.snapshot()
    assert len(got) == 8
    assert sum(gaps(got)) == pytest.approx(sum(RESEND_GAPS) * FACTOR, abs=0.5)
    (note,) = sandbox.client.ledger(batch_no=params["batch_no"])["notifications"].values()
    assert (note["attempts"], note["given_up"], note["acknowledged"]) == (8, True, False)
    (lost,) = sandbox.client.ledger(batch_no=dead_end["batch_no"])["notifications"].values()
    assert (lost["attempts"], lost["given_up"], lost["last_error"]) == (8, True, "ConnectionError")
    assert summary["notifications"]["given_up"] >= 2


def test_no_notify_url_means_no_notification(sandbox: RunningSandbox) -> None:
    params = refund_params(md5_key=sandbox.md5_key)
    assert parse_sync_response(submit(sandbox, params).content).status is SyncStatus.ACCEPTED
    ledger = sandbox.client.ledger(batch_no=params["batch_no"])
    assert ledger["batches"][0]["notify_id"] is None
    assert ledger["notifications"] == {}


# -- restarts --------------------------------------------------------------------------------


def test_state_and_pending_notifications_survive_a_crash(tmp_path: Path) -> None:
    state = tmp_path / "state"
    key = "restart-key-0123456789abcdef"
    answers = {"reply": b"fail"}
    with NotifyReceiver(answer=lambda _r, _i: answers["reply"]) as rx:
        with run_sandbox(state_dir=state, md5_key=key, time_factor=0.0001) as first:
            paid = trade_no()
            first.client.create_trade(paid, "50.00")
            params = refund_params(md5_key=key, notify_url=rx.url)
            assert parse_sync_response(submit(first, params).content).status is SyncStatus.ACCEPTED
            refused = refund_params(md5_key="wrong-key-wrong-key")
            submit(first, refused)
            first.client.set_clock_offset(5)
            rx.wait_for(1)
            before = first.client.ledger()
            first.stop(signal.SIGKILL)  # a crash: no chance to tidy up
        answers["reply"] = b"success"
        with run_sandbox(state_dir=state, md5_key=key, time_factor=0.0001) as second:
            summary = second.client.wait_idle(15)
            after = second.client.ledger()
            status = parse_sync_response(submit(second, params).content)
            clock = second.client.clock()
        forms = [r.form or {} for r in rx.snapshot()]
    assert status.error == "DUPLICATE_BATCH_NO"
    assert after["batches"] == before["batches"]
    assert after["trades"] == before["trades"]
    assert after["refused"][: len(before["refused"])] == before["refused"]
    assert clock["offset_seconds"] == 5
    note = after["notifications"][before["batches"][0]["notify_id"]]
    assert note["acknowledged"] is True
    assert note["attempts"] > before["notifications"][note["notify_id"]]["attempts"]
    assert {f["notify_id"] for f in forms} == {note["notify_id"]}
    assert parse_notify(forms[-1]).batch_no == params["batch_no"]
    assert summary["double_executed"] == []
    assert summary["refunds_executed"] == 1


def test_graceful_stop_and_restart_keeps_the_same_alipay_key(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with run_sandbox(state_dir=state) as first:
        key = first.alipay_public_key
        params = refund_params(md5_key=first.md5_key)
        submit(first, params)
        assert first.stop(signal.SIGTERM) == 0
    with run_sandbox(state_dir=state, md5_key=first.md5_key) as second:
        assert second.alipay_public_key == key
        assert parse_sync_response(submit(second, params).content).error == "DUPLICATE_BATCH_NO"
        assert "sandbox.state.loaded" in second.log_text()
    assert (state / "alipay_private_key.pem").stat().st_mode & 0o777 == 0o600
