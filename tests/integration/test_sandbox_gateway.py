"""The sandbox gateway over HTTP: answers, error codes, the books, notifications, notify_verify.

One sandbox process serves the whole module (auto-trades on, time factor
1e-4); tests use fresh trades and batch numbers so they do not interfere.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import requests

from tests.support.sandbox import (
    PARTNER,
    NotifyReceiver,
    RunningSandbox,
    merchant_rsa_keys,
    refund_params,
    resign,
    run_sandbox,
    submit,
    trade_no,
)
from worker.adapters.gateway.client import GatewayClient
from worker.domain.errors import GatewayOutcomeUnknown
from worker.mapi import (
    RefundItem,
    SyncStatus,
    decode_form,
    encode_form,
    parse_notify,
    parse_sync_response,
    verify,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def sandbox() -> Iterator[RunningSandbox]:
    with run_sandbox(time_factor=0.0001) as running:
        yield running


@pytest.fixture(scope="module")
def receiver() -> Iterator[NotifyReceiver]:
    with NotifyReceiver() as rx:
        yield rx


@pytest.fixture(scope="module")
def gbk_receiver() -> Iterator[NotifyReceiver]:
    with NotifyReceiver(charset="gbk") as rx:
        yield rx


def md5(sb: RunningSandbox, **kwargs: Any) -> dict[str, str]:
    return refund_params(md5_key=sb.md5_key, **kwargs)


def rsa(sb: RunningSandbox, **kwargs: Any) -> dict[str, str]:
    return refund_params(sign_type="RSA", private_key=sb.merchant_private_key, **kwargs)


def answer(response: requests.Response) -> tuple[SyncStatus, str | None]:
    assert response.status_code == 200, response.text
    parsed = parse_sync_response(response.content)
    return parsed.status, parsed.error


def notifications_for(rx: NotifyReceiver, batch_no: str, count: int = 1) -> list[dict[str, str]]:
    """Wait for `count` notifications of `batch_no`; their decoded forms."""
    deadline_hits: list[dict[str, str]] = []

    def mine() -> list[dict[str, str]]:
        return [r.form for r in rx.snapshot() if r.form and r.form.get("batch_no") == batch_no]

    for _ in range(1500):
        deadline_hits = mine()
        if len(deadline_hits) >= count:
            return deadline_hits
        threading.Event().wait(0.01)
    raise AssertionError(f"{len(deadline_hits)} notification(s) for {batch_no}, expected {count}")


# -- accepting, and the notification that follows ------------------------------------------


def test_md5_utf8_batch_is_accepted_executed_and_notified(
    sandbox: RunningSandbox, receiver: NotifyReceiver
) -> None:
    items = [
        RefundItem(trade_no(), Decimal("1.00"), "协商退款 with spaces"),
        RefundItem(trade_no(), Decimal("2.50"), ""),
    ]
    params = md5(sandbox, items=items, notify_url=receiver.url)
    assert answer(submit(sandbox, params)) == (SyncStatus.ACCEPTED, None)

    (form,) = notifications_for(receiver, params["batch_no"])
    assert verify(form, charset="utf-8", md5_key=sandbox.md5_key)
    notify = parse_notify(form)
    assert notify.sign_type == "MD5"
    assert notify.success_num == 2
    assert [(i.trade_no, i.amount, i.code) for i in notify.items] == [
        (items[0].trade_no, Decimal("1.00"), "SUCCESS"),
        (items[1].trade_no, Decimal("2.50"), "SUCCESS"),
    ]
    raw = next(r for r in receiver.snapshot() if r.form == form)
    assert b"notify_time=20" in raw.body and b"+" in raw.body  # the space of notify_time
    assert b"%20" not in raw.body
    assert raw.content_type.startswith("application/x-www-form-urlencoded")

    sandbox.client.wait_idle(10)
    ledger = sandbox.client.ledger(batch_no=params["batch_no"])
    (batch,) = ledger["batches"]
    assert [item["code"] for item in batch["items"]] == ["SUCCESS", "SUCCESS"]
    assert batch["items"][0]["reason"] == "协商退款 with spaces"
    execution = ledger["trades"][items[0].trade_no]["executions"][0]
    assert (execution["batch_no"], execution["amount"]) == (params["batch_no"], "1.00")
    (note,) = ledger["notifications"].values()
    assert note["acknowledged"] is True
    assert note["notify_id"] == form["notify_id"]


def test_rsa_gbk_batch_is_notified_signed_with_the_sandboxs_alipay_key(
    sandbox: RunningSandbox, gbk_receiver: NotifyReceiver
) -> None:
    items = [RefundItem(trade_no(), Decimal("0.01"), "部分退款")]
    params = rsa(sandbox, items=items, charset="gbk", notify_url=gbk_receiver.url)
    assert answer(submit(sandbox, params)) == (SyncStatus.ACCEPTED, None)
    (form,) = notifications_for(gbk_receiver, params["batch_no"])
    assert form["sign_type"] == "RSA"
    assert verify(form, charset="gbk", public_key_pem=sandbox.alipay_public_key)
    # Signed with the sandbox's own "Alipay" key, not with the merchant's.
    assert not verify(form, charset="gbk", public_key_pem=merchant_rsa_keys()[1])
    raw = next(r for r in gbk_receiver.snapshot() if r.form == form)
    assert "charset=gbk" in raw.content_type
    info = sandbox.client.info()
    assert info["alipay_public_key"].encode() == sandbox.alipay_public_key
    assert "PRIVATE" not in str(info)


def test_worker_gateway_client_talks_to_the_sandbox(sandbox: RunningSandbox) -> None:
    params = md5(sandbox, charset="gbk")
    with GatewayClient(
        sandbox.gateway_url, charset="gbk", partner=PARTNER, connect_timeout=2, read_timeout=5
    ) as client:
        first = client.submit(params)
        again = client.submit(params)
        assert client.notify_verify("no-such-notify-id") == "false"
    assert first.status is SyncStatus.ACCEPTED
    assert (again.status, again.error) == (SyncStatus.REFUSED, "DUPLICATE_BATCH_NO")


def test_get_request_with_the_batch_in_the_query_string(sandbox: RunningSandbox) -> None:
    params = md5(sandbox)
    response = requests.get(
        sandbox.gateway_url, params=encode_form(params, "utf-8").decode("ascii"), timeout=10
    )
    assert answer(response) == (SyncStatus.ACCEPTED, None)


def test_duplicate_batch_no_even_when_the_content_changed(sandbox: RunningSandbox) -> None:
    params = md5(sandbox)
    assert answer(submit(sandbox, params)) == (SyncStatus.ACCEPTED, None)
    assert answer(submit(sandbox, params)) == (SyncStatus.REFUSED, "DUPLICATE_BATCH_NO")
    changed = md5(sandbox, serial=params["batch_no"][8:])
    assert changed["batch_no"] == params["batch_no"]
    assert answer(submit(sandbox, changed)) == (SyncStatus.REFUSED, "DUPLICATE_BATCH_NO")
    ledger = sandbox.client.ledger(batch_no=params["batch_no"])
    assert len(ledger["batches"]) == 1
    assert [r["code"] for r in ledger["refused"]] == ["DUPLICATE_BATCH_NO"] * 2


def test_a_batch_no_racing_itself_is_accepted_once(sandbox: RunningSandbox) -> None:
    params = md5(sandbox)
    results: list[tuple[SyncStatus, str | None]] = []
    lock = threading.Lock()

    def post() -> None:
        outcome = answer(submit(sandbox, params))
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=post) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count((SyncStatus.ACCEPTED, None)) == 1
    assert results.count((SyncStatus.REFUSED, "DUPLICATE_BATCH_NO")) == 11


def test_refused_batch_no_may_be_used_again(sandbox: RunningSandbox) -> None:
    params = md5(sandbox)
    broken = resign({**params, "batch_num": "2"}, md5_key=sandbox.md5_key)
    assert answer(submit(sandbox, broken)) == (SyncStatus.REFUSED, "BATCH_NUM_NOT_EQUAL_TOTAL")
    assert answer(submit(sandbox, params)) == (SyncStatus.ACCEPTED, None)


# -- every refusal code over HTTP ----------------------------------------------------------------


def _mutations(sb: RunningSandbox) -> dict[str, dict[str, str]]:
    key = sb.md5_key
    t = trade_no()

    def changed(**values: str | None) -> dict[str, str]:
        base = md5(sb)
        for name, value in values.items():
            if value is None:
                base.pop(name, None)
            else:
                base[name] = value
        return resign(base, md5_key=key)

    yesterday = datetime.now(UTC) - timedelta(days=1)
    return {
        "ILLEGAL_SERVICE": changed(service="single_trade_query"),
        "ILLEGAL_PARTNER": changed(partner="2088999999999999"),
        "ILLEGAL_SIGN_TYPE": changed(sign_type="DSA"),
        "ILLEGAL_SIGN": {**md5(sb), "sign": "0" * 32},
        "ILLEGAL_ARGUMENT": changed(batch_num=None),
        "BATCH_NO_FORMAT_ERROR": changed(batch_no="20240230abc"),
        "REFUND_DATE_ERROR": md5(sb, now=yesterday),
        "BATCH_NUM_ERROR": changed(batch_num="one"),
        "BATCH_NUM_EXCEED_LIMIT": changed(batch_num="1001"),
        "BATCH_NUM_NOT_EQUAL_TOTAL": changed(batch_num="3"),
        "DETAIL_DATA_FORMAT_ERROR": changed(detail_data=f"{t}^1.0^r"),
        "SINGLE_DETAIL_DATA_EXCEED_LIMIT": changed(detail_data=f"{t}^1.00^" + "x" * 300),
        "DUBL_TRADE_NO_IN_SAME_BATCH": changed(detail_data=f"{t}^1.00^a#{t}^2.00^b", batch_num="2"),
    }


def test_every_refusal_code_comes_back_over_http(sandbox: RunningSandbox) -> None:
    for code, params in _mutations(sandbox).items():
        assert answer(submit(sandbox, params)) == (SyncStatus.REFUSED, code), code
    bad_charset = requests.post(
        f"{sandbox.gateway_url}?_input_charset=latin1",
        data=encode_form(md5(sandbox), "utf-8"),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=10,
    )
    assert answer(bad_charset) == (SyncStatus.REFUSED, "ILLEGAL_CHARSET")
    summary = sandbox.client.summary()
    for code in ("ILLEGAL_SIGN", "BATCH_NUM_ERROR", "ILLEGAL_CHARSET"):
        assert summary["refused_by_code"][code] >= 1


def test_answers_are_gbk_declared_xml(sandbox: RunningSandbox) -> None:
    response = submit(sandbox, md5(sandbox))
    assert response.headers["Content-Type"] == "text/xml; charset=GBK"
    assert response.content.startswith(b'<?xml version="1.0" encoding="GBK"?>')


# -- notify_verify ---------------------------------------------------------------------


def test_notify_verify_true_until_acknowledged(sandbox: RunningSandbox) -> None:
    answers: list[str] = []

    def verify_then_ack(received: Any, _index: int) -> bytes:
        notify_id = (received.form or {}).get("notify_id", "")
        reply = requests.get(
            sandbox.gateway_url,
            params={"service": "notify_verify", "partner": PARTNER, "notify_id": notify_id},
            timeout=5,
        )
        answers.append(reply.text)
        return b"success"

    with NotifyReceiver(answer=verify_then_ack) as rx:
        params = md5(sandbox, notify_url=rx.url)
        assert answer(submit(sandbox, params)) == (SyncStatus.ACCEPTED, None)
        (form,) = notifications_for(rx, params["batch_no"])
        sandbox.client.wait_idle(10)
    assert answers == ["true"]

    def ask(partner: str, notify_id: str) -> str:
        query = {"service": "notify_verify", "partner": partner, "notify_id": notify_id}
        return requests.get(sandbox.gateway_url, params=query, timeout=5).text

    assert ask(PARTNER, form["notify_id"]) == "false"  # acknowledged: no longer verifiable
    assert ask(PARTNER, "86742cf72c3edb4f2818e67799d873cmva") == "false"
    assert ask("2088999999999999", form["notify_id"]) == "invalid"


# -- item-level results ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def strict() -> Iterator[RunningSandbox]:
    """A sandbox without auto-trades: every trade must be created first."""
    with run_sandbox(time_factor=0.0001, auto_trades=False) as running:
        yield running


def test_item_rules_show_in_result_details(
    strict: RunningSandbox, receiver: NotifyReceiver
) -> None:
    paid, closed, finished, unknown, capped = (trade_no() for _ in range(5))
    strict.client.create_trades(
        [
            (paid, "10.00"),
            (closed, "10.00", "closed"),
            (finished, "10.00", "finished"),
            (capped, "100.00"),
        ]
    )
    for n in range(99):
        p = md5(strict, items=[RefundItem(capped, Decimal("0.01"), "")])
        assert answer(submit(strict, p))[0] is SyncStatus.ACCEPTED, n
    items = [
        RefundItem(paid, Decimal("10.00"), "all of it"),
        RefundItem(closed, Decimal("1.00"), ""),
        RefundItem(finished, Decimal("1.00"), ""),
        RefundItem(unknown, Decimal("1.00"), ""),
        RefundItem(capped, Decimal("0.01"), "the 100th"),
    ]
    params = md5(strict, items=items, notify_url=receiver.url)
    assert answer(submit(strict, params)) == (SyncStatus.ACCEPTED, None)
    notify = parse_notify(notifications_for(receiver, params["batch_no"])[0])
    assert [i.code for i in notify.items] == [
        "SUCCESS",
        "TRADE_HAS_CLOSED",
        "TRADE_STATUS_ERROR",
        "TRADE_NOT_EXIST",
        "TRADE_STATUS_ERROR",
    ]
    assert notify.success_num == 1
    more = md5(strict, items=[RefundItem(paid, Decimal("0.01"), "")], notify_url=receiver.url)
    assert answer(submit(strict, more)) == (SyncStatus.ACCEPTED, None)
    (late,) = parse_notify(notifications_for(receiver, more["batch_no"])[0]).items
    assert late.code == "REFUND_AMOUNT_NOT_VALID"
    trades = strict.client.ledger()["trades"]
    assert trades[paid]["refunded"] == "10.00"
    assert trades[capped]["refund_count"] == 99
    assert unknown not in trades
    summary = strict.client.summary()
    assert summary["double_executed"] == [] and summary["over_refunded"] == []


def test_control_api_validates_trades(strict: RunningSandbox) -> None:
    from sandbox.client import SandboxError

    for bad in (
        {"trade_no": "123", "amount": "1.00"},
        {"trade_no": trade_no(), "amount": "1.001"},
        {"trade_no": trade_no(), "amount": 1.5},
        {"trade_no": trade_no(), "amount": "1.00", "status": "refunded"},
    ):
        with pytest.raises(SandboxError) as caught:
            strict.client._call("POST", "/_sandbox/trades", json=bad)
        assert caught.value.status == 400
    created = strict.client.create_trade(trade_no(), Decimal("5"))
    assert (created["paid"], created["status"], created["refund_count"]) == ("5.00", "paid", 0)


def test_unknown_outcome_maps_to_the_workers_error(sandbox: RunningSandbox) -> None:
    """Sanity link with the worker's adapter: an injected 5xx is an unknown outcome."""
    sandbox.client.set_faults({"http_5xx": {"count": 1}})
    try:
        with (
            GatewayClient(
                sandbox.gateway_url,
                charset="utf-8",
                partner=PARTNER,
                connect_timeout=2,
                read_timeout=5,
            ) as client,
            pytest.raises(GatewayOutcomeUnknown),
        ):
            client.submit(md5(sandbox))
    finally:
        sandbox.client.clear_faults()


def test_form_decoding_of_the_notification_matches_the_worker(sandbox: RunningSandbox) -> None:
    with NotifyReceiver() as rx:
        params = md5(sandbox, notify_url=rx.url)
        submit(sandbox, params)
        notifications_for(rx, params["batch_no"])
        raw = rx.snapshot()[0].body
    form = decode_form(raw, "utf-8")
    assert list(form) == [
        "notify_time",
        "notify_type",
        "notify_id",
        "sign_type",
        "sign",
        "batch_no",
        "success_num",
        "result_details",
    ]
