"""The sandbox's OpenAPI gateway over HTTP, driven with the worker's request builders.

One sandbox serves the module; each test uses its own trades and envelopes and
clears the faults and OpenAPI settings afterwards.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import requests

from tests.support.sandbox import APP_ID, NotifyReceiver, RunningSandbox, run_sandbox, trade_no
from worker.mapi import encode_form
from worker.openapi import (
    COUPON_QUERY,
    COUPON_REFUND,
    TRADE_REFUND,
    TRADE_REFUND_QUERY,
    Answer,
    Verdict,
    classify,
    coupon_query_request,
    coupon_refund_request,
    parse_coupon_notification,
    read_answer,
    trade_refund_query_request,
    trade_refund_request,
    verify_notification,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def sandbox() -> Iterator[RunningSandbox]:
    with run_sandbox(time_factor=0.0001, seed=7, app_id=APP_ID) as running:
        yield running


@pytest.fixture
def sb(sandbox: RunningSandbox) -> Iterator[RunningSandbox]:
    sandbox.client.clear_faults()
    yield sandbox
    sandbox.client.clear_faults()
    sandbox.client.update_settings(openapi_answer_shapes="plain", openapi_coupon_status="SUCCESS")


def post(sb: RunningSandbox, params: dict[str, str], timeout: float = 10.0) -> requests.Response:
    return requests.post(
        sb.openapi_gateway_url,
        data=encode_form(params, "utf-8"),
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
        timeout=timeout,
    )


def answer(sb: RunningSandbox, response: requests.Response, method: str) -> Answer:
    assert response.status_code == 200, response.text[:200]
    got = read_answer(response.text, method, sb.openapi_public_key)
    assert isinstance(got, Answer), got
    return got


def refund(sb: RunningSandbox, trade: str, request: str, amount: str) -> dict[str, str]:
    return trade_refund_request(
        sb.openapi_app(),
        out_request_no=request,
        amount=Decimal(amount),
        now=datetime.now(UTC),
        trade_no=trade,
    )


def no_red_flags(sb: RunningSandbox) -> None:
    summary = sb.client.summary()
    assert summary["openapi"]["double_executed"] == []
    assert summary["openapi"]["over_refunded"] == []
    assert summary["double_executed"] == [] and summary["over_refunded"] == []


def trade_refunds(sb: RunningSandbox, trade: str) -> list[dict[str, str]]:
    return [r for r in sb.client.openapi_ledger()["trade_refunds"] if r["trade_no"] == trade]


# -- the methods ---------------------------------------------------------------------------


def test_info_shows_the_openapi_key_and_app(sb: RunningSandbox) -> None:
    info = sb.client.info()["openapi"]
    assert info["alipay_public_key"].encode() == sb.openapi_public_key
    assert info["apps"] == [{"app_id": APP_ID, "partner": sb.partner}]


def test_trade_refund_then_repeat_then_query(sb: RunningSandbox) -> None:
    trade = trade_no()
    sb.client.create_openapi_trade("10.00", trade_no=trade, out_trade_no=f"o{trade[-8:]}")
    first = answer(sb, post(sb, refund(sb, trade, "r1", "4.00")), TRADE_REFUND)
    assert classify(first).verdict is Verdict.SUCCEEDED
    assert first.fields["refund_fee"] == "4.00" and first.fields["out_trade_no"] == f"o{trade[-8:]}"
    again = answer(sb, post(sb, refund(sb, trade, "r1", "4.00")), TRADE_REFUND)
    assert again.fields["fund_change"] == "N"
    assert len(trade_refunds(sb, trade)) == 1
    query = trade_refund_query_request(
        sb.openapi_app(), out_request_no="r1", now=datetime.now(UTC), trade_no=trade
    )
    found = answer(sb, post(sb, query), TRADE_REFUND_QUERY)
    assert found.fields["refund_status"] == "REFUND_SUCCESS"
    assert found.fields["refund_amount"] == "4.00"
    missing = trade_refund_query_request(
        sb.openapi_app(), out_request_no="r2", now=datetime.now(UTC), trade_no=trade
    )
    assert classify(answer(sb, post(sb, missing), TRADE_REFUND_QUERY)).verdict is Verdict.NOT_FOUND
    no_red_flags(sb)


def test_discordant_repeat_and_over_refund_are_refused(sb: RunningSandbox) -> None:
    trade = trade_no()
    sb.client.create_openapi_trade("5.00", trade_no=trade)
    answer(sb, post(sb, refund(sb, trade, "r1", "3.00")), TRADE_REFUND)
    discordant = answer(sb, post(sb, refund(sb, trade, "r1", "2.00")), TRADE_REFUND)
    assert (discordant.code, discordant.sub_code) == ("40004", "ACQ.DISCORDANT_REPEAT_REQUEST")
    over = answer(sb, post(sb, refund(sb, trade, "r2", "2.01")), TRADE_REFUND)
    assert over.sub_code == "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL"
    sb.client.create_openapi_trade("5.00", trade_no=trade, status="closed")
    closed = answer(sb, post(sb, refund(sb, trade, "r3", "1.00")), TRADE_REFUND)
    assert closed.sub_code == "ACQ.TRADE_STATUS_ERROR"
    no_red_flags(sb)


def test_varied_shapes_verify(sb: RunningSandbox) -> None:
    sb.client.update_settings(openapi_answer_shapes="vary")
    trade = trade_no()
    bodies = set()
    for index in range(8):
        response = post(sb, refund(sb, trade, f"v{index}", "1.00"))
        assert classify(answer(sb, response, TRADE_REFUND)).verdict is Verdict.SUCCEEDED
        bodies.add(response.text.split('"sign"')[0][:3])
    assert len(bodies) > 1  # the sign member first or not, whitespace


def test_coupon_refund_notification_is_signed_and_resent_until_success(
    sb: RunningSandbox,
) -> None:
    with NotifyReceiver(answer=lambda _r, i: b"success" if i >= 2 else b"fail") as rx:
        envelope = sb.client.create_envelope("8.00")
        params = coupon_refund_request(
            sb.openapi_app(),
            auth_no=envelope["auth_no"],
            out_request_no="c1",
            amount=Decimal("3.00"),
            now=datetime.now(UTC),
            notify_url=rx.url,
            remark="剩余红包退回",
        )
        done = answer(sb, post(sb, params), COUPON_REFUND)
        assert done.fields["status"] == "SUCCESS"
        assert classify(done).verdict is Verdict.SUCCEEDED
        got = rx.wait_for(3)
        sb.client.wait_idle()
        assert len(rx.snapshot()) == 3
        for received in got:
            assert received.form is not None
            assert verify_notification(received.form, sb.openapi_public_key)
            note = parse_coupon_notification(received.form)
            assert note.operation_id == done.fields["operation_id"]
            assert note.amount == Decimal("3.00") and note.succeeded
        assert len({r.form["notify_id"] for r in got if r.form}) == 1
        # a repeat answers the same operation and sends no new notification
        again = answer(sb, post(sb, params), COUPON_REFUND)
        assert again.fields["operation_id"] == done.fields["operation_id"]
        query = coupon_query_request(
            sb.openapi_app(),
            auth_no=envelope["auth_no"],
            out_request_no="c1",
            now=datetime.now(UTC),
        )
        assert answer(sb, post(sb, query), COUPON_QUERY).fields["status"] == "SUCCESS"
    ledger = sb.client.openapi_ledger()
    note = next(n for n in ledger["notifications"].values() if n["auth_no"] == envelope["auth_no"])
    assert note["acknowledged"] and note["attempts"] == 3
    no_red_flags(sb)


def test_coupon_refund_refusals_and_unknown_operation(sb: RunningSandbox) -> None:
    envelope = sb.client.create_envelope("1.00")
    app = sb.openapi_app()

    def call(request: str, amount: str) -> Answer:
        params = coupon_refund_request(
            app,
            auth_no=envelope["auth_no"],
            out_request_no=request,
            amount=Decimal(amount),
            now=datetime.now(UTC),
            notify_url=None,
        )
        return answer(sb, post(sb, params), COUPON_REFUND)

    assert call("c1", "0.60").fields["status"] == "SUCCESS"
    assert call("c1", "0.50").sub_code == "UNIQUE_VIOLATION"
    assert call("c2", "0.50").sub_code == "MONEY_NOT_ENOUGH"
    query = coupon_query_request(
        app, auth_no=envelope["auth_no"], out_request_no="c9", now=datetime.now(UTC)
    )
    unknown = answer(sb, post(sb, query), COUPON_QUERY)
    assert (unknown.code, unknown.sub_code) == ("40004", "OPERATION_NOT_EXIST")


def test_coupon_init_setting(sb: RunningSandbox) -> None:
    sb.client.update_settings(openapi_coupon_status="INIT")
    envelope = sb.client.create_envelope("1.00")
    params = coupon_refund_request(
        sb.openapi_app(),
        auth_no=envelope["auth_no"],
        out_request_no="i1",
        amount=Decimal("1.00"),
        now=datetime.now(UTC),
        notify_url=None,
    )
    got = answer(sb, post(sb, params), COUPON_REFUND)
    assert got.fields["status"] == "INIT"
    assert classify(got).verdict is Verdict.IN_PROGRESS


# -- gateway errors ------------------------------------------------------------------------


def test_bad_signature_unknown_app_and_missing_parameter(sb: RunningSandbox) -> None:
    params = refund(sb, trade_no(), "e1", "1.00")
    forged = {**params, "sign": params["sign"][:-8] + "AAAAAAA="}
    bad = answer(sb, post(sb, forged), TRADE_REFUND)
    assert (bad.member.value, bad.code, bad.sub_code) == ("error", "40002", "isv.invalid-signature")
    assert classify(bad).verdict is Verdict.CONFIG_ERROR
    unknown = post(sb, {**params, "app_id": "2021999999999999"})
    assert '"isv.invalid-app-id"' in unknown.text and '"sign":""' in unknown.text
    missing = answer(
        sb, post(sb, {k: v for k, v in params.items() if k != "timestamp"}), TRADE_REFUND
    )
    assert (missing.code, missing.sub_code) == ("40001", "isv.missing-timestamp")
    assert trade_refunds(sb, params["biz_content"][13:41]) == []


# -- faults --------------------------------------------------------------------------------


def test_http_5xx_before_and_after(sb: RunningSandbox) -> None:
    trade = trade_no()
    sb.client.set_faults({"openapi": {"http_5xx": {"count": 1, "status": 502}}})
    assert post(sb, refund(sb, trade, "f1", "1.00")).status_code == 502
    assert trade_refunds(sb, trade) == []
    sb.client.set_faults({"openapi": {"http_5xx": {"count": 1, "accept": True}}})
    assert post(sb, refund(sb, trade, "f1", "1.00")).status_code == 503
    assert len(trade_refunds(sb, trade)) == 1
    again = answer(sb, post(sb, refund(sb, trade, "f1", "1.00")), TRADE_REFUND)
    assert again.fields["fund_change"] == "N"
    assert sb.client.faults()["faults"]["openapi.http_5xx"]["remaining"] == 0
    no_red_flags(sb)


def test_reset_after_accept_makes_the_refund(sb: RunningSandbox) -> None:
    trade = trade_no()
    sb.client.set_faults({"openapi": {"reset_after_accept": {"count": 1}}})
    with pytest.raises(requests.ConnectionError):
        post(sb, refund(sb, trade, "x1", "2.00"))
    assert len(trade_refunds(sb, trade)) == 1
    again = answer(sb, post(sb, refund(sb, trade, "x1", "2.00")), TRADE_REFUND)
    assert again.fields["fund_change"] == "N" and again.fields["refund_fee"] == "2.00"
    no_red_flags(sb)


@pytest.mark.parametrize("accept", [False, True])
def test_unknown_error_with_and_without_the_refund(sb: RunningSandbox, accept: bool) -> None:
    trade = trade_no()
    sb.client.set_faults({"openapi": {"unknown_error": {"count": 1, "accept": accept}}})
    got = answer(sb, post(sb, refund(sb, trade, "u1", "1.00")), TRADE_REFUND)
    assert (got.code, got.sub_code) == ("20000", "isp.unknow-error")
    assert classify(got).verdict is Verdict.UNKNOWN
    assert len(trade_refunds(sb, trade)) == (1 if accept else 0)


def test_hang_and_slow(sb: RunningSandbox) -> None:
    trade = trade_no()
    sb.client.set_faults({"openapi": {"hang": {"count": 1, "seconds": 3}}})
    with pytest.raises(requests.ReadTimeout):
        post(sb, refund(sb, trade, "h1", "1.00"), timeout=0.5)
    assert len(trade_refunds(sb, trade)) == 1
    sb.client.set_faults({"openapi": {"hang": {"count": 1, "seconds": 3, "accept": False}}})
    with pytest.raises(requests.ReadTimeout):
        post(sb, refund(sb, trade, "h2", "1.00"), timeout=0.5)
    assert len(trade_refunds(sb, trade)) == 1
    sb.client.set_faults({"openapi": {"slow": {"count": 1, "seconds": 0.3}}})
    got = answer(sb, post(sb, refund(sb, trade, "s1", "1.00")), TRADE_REFUND)
    assert got.fields["fund_change"] == "Y"
    assert sb.client.faults()["fired_total"]["openapi.slow"] == 1


@pytest.mark.parametrize(
    ("faults", "sends"),
    [
        ({"notify_lost": {"count": 1}}, 1),
        ({"notify_duplicate": {"count": 1}}, 2),
        ({"notify_slow": {"count": 1, "seconds": 0.2}}, 1),
    ],
)
def test_coupon_notification_faults(
    sb: RunningSandbox, faults: dict[str, object], sends: int
) -> None:
    sb.client.set_faults({"openapi": faults})
    with NotifyReceiver() as rx:
        envelope = sb.client.create_envelope("2.00")
        params = coupon_refund_request(
            sb.openapi_app(),
            auth_no=envelope["auth_no"],
            out_request_no=f"n{secrets.token_hex(4)}",
            amount=Decimal("1.00"),
            now=datetime.now(UTC),
            notify_url=rx.url,
        )
        answer(sb, post(sb, params), COUPON_REFUND)
        rx.wait_for(sends)
        sb.client.wait_idle()
        got = rx.snapshot()
    assert len(got) == sends
    assert all(
        r.form is not None and verify_notification(r.form, sb.openapi_public_key) for r in got
    )
    note = next(
        n
        for n in sb.client.openapi_ledger()["notifications"].values()
        if n["auth_no"] == envelope["auth_no"]
    )
    assert note["acknowledged"]
    assert note["lost"] == (1 if "notify_lost" in faults else 0)
