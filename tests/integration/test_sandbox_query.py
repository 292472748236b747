"""The refund query `refund_fastpay_query` against a running sandbox, over HTTP."""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal

import pytest
import requests

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
from worker.domain.errors import NotifyFormatError
from worker.mapi import RefundItem, SyncStatus, decode_form, parse_sync_response

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def sandbox() -> Iterator[RunningSandbox]:
    with run_sandbox(time_factor=0.0001, seed=3) as running:
        yield running


@pytest.fixture
def sb(sandbox: RunningSandbox) -> Iterator[RunningSandbox]:
    sandbox.client.clear_faults()
    yield sandbox
    sandbox.client.clear_faults()


def refund(sb: RunningSandbox, *items: tuple[str, str]) -> str:
    """Submit one accepted batch of (trade_no, amount) items; its batch_no."""
    rows = [RefundItem(t, Decimal(a), "协商退款") for t, a in items]
    params = refund_params(md5_key=sb.md5_key, items=rows)
    assert parse_sync_response(submit(sb, params).content).status is SyncStatus.ACCEPTED
    return params["batch_no"]


def ask(
    sb: RunningSandbox,
    *,
    method: str = "POST",
    batch_no: str | None = None,
    trade_no: str | None = None,
) -> dict[str, str]:
    params = query_params(md5_key=sb.md5_key, batch_no=batch_no, trade_no=trade_no)
    response = query(sb, params, method=method)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    return query_answer(response)


def test_query_by_batch_no_lists_every_processed_item(sb: RunningSandbox) -> None:
    closed, paid = trade_no(), trade_no()
    sb.client.create_trade(closed, "10.00", status="closed")
    batch_no = refund(sb, (paid, "1.50"), (closed, "2.00"))
    for method in ("POST", "GET"):
        answer = ask(sb, method=method, batch_no=batch_no)
        assert answer["is_success"] == "T"
        assert query_items(answer) == [
            (batch_no, paid, "1.50", "SUCCESS"),
            (batch_no, closed, "2.00", "TRADE_HAS_CLOSED"),
        ]


def test_query_by_trade_no_spans_batches_and_external_refunds(sb: RunningSandbox) -> None:
    t, other = trade_no(), trade_no()
    first = refund(sb, (t, "1.00"), (other, "1.00"))
    external = sb.client.add_external_refunds(t, 2, "0.50")["batch_nos"]
    second = refund(sb, (t, "2.00"))
    answer = ask(sb, trade_no=t)
    assert query_items(answer) == [
        (first, t, "1.00", "SUCCESS"),
        (external[0], t, "0.50", "SUCCESS"),
        (external[1], t, "0.50", "SUCCESS"),
        (second, t, "2.00", "SUCCESS"),
    ]
    assert query_items(ask(sb, batch_no=external[1])) == [(external[1], t, "0.50", "SUCCESS")]
    # Both: the intersection.
    assert query_items(ask(sb, batch_no=first, trade_no=other)) == [
        (first, other, "1.00", "SUCCESS")
    ]
    assert ask(sb, batch_no=second, trade_no=other) == {
        "is_success": "F",
        "error_code": "REFUND_NOT_EXIST",
    }


def test_values_are_url_encoded_and_may_carry_bank_card_fields(sb: RunningSandbox) -> None:
    trades = [trade_no() for _ in range(12)]
    batch_no = refund(sb, *((t, "1.00") for t in trades))
    response = query(sb, query_params(md5_key=sb.md5_key, batch_no=batch_no))
    assert b"%5E" in response.content and b"%23" in response.content
    assert b"^" not in response.content and b"#" not in response.content
    entries = query_answer(response)["result_details"].split("#")
    tails = {tuple(entry.split("^")[4:]) for entry in entries}
    assert tails <= {(), ("N", ""), ("Y", "S")}
    assert len(tails) > 1  # some entries carry the extra fields, some do not


def test_a_gbk_query_is_answered_in_gbk(sb: RunningSandbox) -> None:
    t = trade_no()
    batch_no = refund(sb, (t, "3.00"))
    params = query_params(md5_key=sb.md5_key, trade_no=t, charset="gbk")
    response = query(sb, params)
    assert response.headers["Content-Type"] == "text/plain; charset=gbk"
    assert query_items(decode_form(response.content, "gbk")) == [(batch_no, t, "3.00", "SUCCESS")]


def test_nothing_found_is_refund_not_exist(sb: RunningSandbox) -> None:
    not_exist = {"is_success": "F", "error_code": "REFUND_NOT_EXIST"}
    assert ask(sb, batch_no="20000101999") == not_exist
    assert ask(sb, trade_no=trade_no()) == not_exist
    refused = refund_params(md5_key=sb.md5_key)
    refused["sign"] = "0" * 32  # refused synchronously: the batch was never accepted
    assert parse_sync_response(submit(sb, refused).content).error == "ILLEGAL_SIGN"
    assert ask(sb, batch_no=refused["batch_no"]) == not_exist


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"sign": "0" * 32}, "ILLEGAL_SIGN"),
        ({"partner": "2088999999999999"}, "ILLEGAL_PARTNER"),
        ({"sign_type": "DSA"}, "ILLEGAL_SIGN_TYPE"),
    ],
)
def test_refused_queries_are_form_answers(
    sb: RunningSandbox, change: dict[str, str], code: str
) -> None:
    params = {**query_params(md5_key=sb.md5_key, trade_no=trade_no()), **change}
    response = query(sb, params)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert response.content == f"is_success=F&error_code={code}".encode()


def test_a_query_without_batch_no_or_trade_no_is_an_illegal_argument(sb: RunningSandbox) -> None:
    response = query(sb, query_params(md5_key=sb.md5_key))
    assert response.content == b"is_success=F&error_code=ILLEGAL_ARGUMENT"


def test_the_query_changes_nothing(sb: RunningSandbox) -> None:
    t = trade_no()
    batch_no = refund(sb, (t, "1.00"))
    sb.client.wait_idle(10)
    before = sb.client.summary()
    for _ in range(3):
        ask(sb, batch_no=batch_no)
        ask(sb, trade_no=t)
        query(sb, {**query_params(md5_key=sb.md5_key, trade_no=t), "sign": "0" * 32})
    after = sb.client.summary()
    assert before == after


# -- faults ---------------------------------------------------------------------------


def test_http_5xx_on_the_query_only(sb: RunningSandbox) -> None:
    t = trade_no()
    sb.client.set_faults({"http_5xx": {"service": "query", "status": 502, "count": 1}})
    batch_no = refund(sb, (t, "1.00"))  # the refund is not touched
    response = query(sb, query_params(md5_key=sb.md5_key, batch_no=batch_no))
    assert response.status_code == 502
    assert response.headers["Content-Type"].startswith("text/html")
    assert query_items(ask(sb, batch_no=batch_no)) == [(batch_no, t, "1.00", "SUCCESS")]
    assert sb.client.faults()["faults"]["http_5xx"]["fired"] == 1


def test_hang_on_the_query_outlasts_a_short_timeout(sb: RunningSandbox) -> None:
    sb.client.set_faults({"hang": {"service": "query", "seconds": 3, "count": 1}})
    started = time.monotonic()
    with pytest.raises(requests.exceptions.ReadTimeout):
        query(sb, query_params(md5_key=sb.md5_key, trade_no=trade_no()), timeout=0.5)
    assert time.monotonic() - started < 2.5
    assert sb.client.faults()["faults"]["hang"]["fired"] == 1


def test_slow_on_any_service_delays_the_real_answer(sb: RunningSandbox) -> None:
    sb.client.set_faults({"slow": {"service": "any", "seconds": 0.5, "count": 1}})
    started = time.monotonic()
    answer = ask(sb, trade_no=trade_no())
    assert time.monotonic() - started >= 0.45
    assert answer == {"is_success": "F", "error_code": "REFUND_NOT_EXIST"}


@pytest.mark.parametrize("body", ["html", "truncated"])
def test_garbage_on_the_query_is_a_200_nobody_can_read(sb: RunningSandbox, body: str) -> None:
    t = trade_no()
    batch_no = refund(sb, (t, "1.00"))
    sb.client.set_faults({"garbage": {"body": body, "count": 1}})
    response = query(sb, query_params(md5_key=sb.md5_key, batch_no=batch_no))
    assert response.status_code == 200
    try:
        form = decode_form(response.content, "utf-8")
    except NotifyFormatError:
        form = {}
    assert "result_details" not in form and form.get("is_success") not in ("T", "F")
    # The refund itself was not touched, and the next query is answered.
    assert query_items(ask(sb, batch_no=batch_no)) == [(batch_no, t, "1.00", "SUCCESS")]


def test_garbage_on_notify_verify(sb: RunningSandbox) -> None:
    sb.client.set_faults({"garbage": {"service": "notify_verify", "body": "truncated"}})
    reply = requests.get(
        sb.gateway_url,
        params={"service": "notify_verify", "partner": sb.partner, "notify_id": "x" * 34},
        timeout=5,
    )
    assert (reply.status_code, reply.text) == (200, "tr")


def test_garbage_on_a_refund_after_taking_the_batch(sb: RunningSandbox) -> None:
    sb.client.set_faults({"garbage": {"service": "refund", "body": "html", "count": 1}})
    with NotifyReceiver() as rx:
        params = refund_params(md5_key=sb.md5_key, notify_url=rx.url)
        response = submit(sb, params)
        assert response.status_code == 200
        assert parse_sync_response(response.content).status is SyncStatus.UNKNOWN
        rx.wait_for(1)
    assert sb.client.ledger(batch_no=params["batch_no"])["batches"]
