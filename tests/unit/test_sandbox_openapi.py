"""The OpenAPI gateway's pure pieces: books and idempotency, checks, answers and signing."""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from sandbox.faults import parse_fault_set
from sandbox.openapi.books import OpenApiBooks
from sandbox.openapi.checks import GatewayError, OpenApiCall, check_call
from sandbox.openapi.records import Refused
from sandbox.openapi.writer import PLAIN, shape_from, write_answer
from worker.domain.errors import ConfigError
from worker.mapi import encode_form
from worker.openapi import (
    Answer,
    OpenApiApp,
    Unverifiable,
    coupon_refund_request,
    read_answer,
    trade_refund_request,
)

APP = "2021000000000001"
TRADE = "2016000000000000000000000001"
NOW = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)


@functools.lru_cache(maxsize=2)
def pair(name: str) -> tuple[bytes, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


def app() -> OpenApiApp:
    return OpenApiApp(APP, pair("app")[0], pair("alipay")[1])


def books_refund(books: OpenApiBooks, request: str, amount: str, **kw: object) -> object:
    args: dict[str, object] = {
        "trade_no": TRADE,
        "out_trade_no": None,
        "out_request_no": request,
        "amount": Decimal(amount),
        "gmt": "2024-05-06 15:08:09",
        "today": "20240506",
        "app_id": APP,
        "auto_amount": None,
    }
    args.update(kw)
    return books.trade_refund(**args)  # type: ignore[arg-type]


# -- books -----------------------------------------------------------------------------------


def test_a_repeat_with_the_same_amount_is_the_same_refund() -> None:
    books = OpenApiBooks()
    books.add_trade(
        trade_no=TRADE, out_trade_no="o1", amount=Decimal("10.00"), status="paid", today="20240506"
    )
    first = books_refund(books, "r1", "4.00")
    again = books_refund(books, "r1", "4.00")
    assert isinstance(first, tuple) and first[1] is True
    assert isinstance(again, tuple) and again[1] is False and again[0] == first[0]
    assert books.trades[TRADE].refunded == Decimal("4.00")
    summary = books.summary()
    assert summary["refunds_executed"] == 1
    assert summary["double_executed"] == [] and summary["over_refunded"] == []


def test_discordant_repeat_over_refund_and_closed_trade_are_refused() -> None:
    books = OpenApiBooks()
    books.add_trade(
        trade_no=TRADE, out_trade_no=None, amount=Decimal("10.00"), status="paid", today="20240506"
    )
    books_refund(books, "r1", "4.00")
    assert books_refund(books, "r1", "5.00") == Refused(
        "ACQ.DISCORDANT_REPEAT_REQUEST", "请求信息不一致 (another amount)"
    )
    over = books_refund(books, "r2", "6.01")
    assert isinstance(over, Refused) and over.sub_code == "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL"
    books.add_trade(
        trade_no=TRADE, out_trade_no=None, amount=Decimal("10.00"), status="closed", today="x"
    )
    closed = books_refund(books, "r3", "1.00")
    assert isinstance(closed, Refused) and closed.sub_code == "ACQ.TRADE_STATUS_ERROR"
    unknown = books_refund(books, "r4", "1.00", trade_no="2016000000000000000000000999")
    assert isinstance(unknown, Refused) and unknown.sub_code == "ACQ.TRADE_NOT_EXIST"


def test_auto_created_trade_by_out_trade_no_and_query() -> None:
    books = OpenApiBooks()
    made = books_refund(
        books, "r1", "2.00", trade_no=None, out_trade_no="shop-1", auto_amount=Decimal("50.00")
    )
    assert isinstance(made, tuple)
    trade = made[2]
    assert trade.out_trade_no == "shop-1" and len(trade.trade_no) == 28
    found = books.refund_query(trade_no=None, out_trade_no="shop-1", out_request_no="r1")
    assert isinstance(found, tuple) and found[1] is not None and found[1].amount == Decimal("2.00")
    none = books.refund_query(trade_no=trade.trade_no, out_trade_no=None, out_request_no="r9")
    assert isinstance(none, tuple) and none[1] is None


def coupon(books: OpenApiBooks, request: str, amount: str, **kw: object) -> object:
    args: dict[str, object] = {
        "auth_no": "A1",
        "out_request_no": request,
        "amount": Decimal(amount),
        "gmt": "2024-05-06 15:08:09",
        "today": "20240506",
        "settle_ts": 0.0,
        "app_id": APP,
        "notify_url": "http://127.0.0.1:1/n",
        "notify_id": f"n{request}",
        "auto_amount": None,
    }
    args.update(kw)
    return books.coupon_refund(**args)  # type: ignore[arg-type]


def test_envelope_refunds_use_the_coupon_codes() -> None:
    books = OpenApiBooks()
    assert coupon(books, "c1", "1.00") == Refused("AUTH_ORDER_NOT_EXIST", "资金授权订单不存在")
    books.add_envelope(auth_no="A1", amount=Decimal("3.00"), status="open", today="20240506")
    first = coupon(books, "c1", "2.00")
    assert isinstance(first, tuple) and first[1] is True
    assert first[0].status(1.0) == "SUCCESS"
    again = coupon(books, "c1", "2.00")
    assert isinstance(again, tuple) and again[1] is False
    assert len(books.notices) == 1
    discordant = coupon(books, "c1", "1.00")
    assert isinstance(discordant, Refused) and discordant.sub_code == "UNIQUE_VIOLATION"
    over = coupon(books, "c2", "1.01")
    assert isinstance(over, Refused) and over.sub_code == "MONEY_NOT_ENOUGH"
    unknown = books.coupon_query(auth_no="A1", out_request_no="c9")
    assert isinstance(unknown, Refused) and unknown.sub_code == "OPERATION_NOT_EXIST"


def test_red_flags_come_from_the_executions() -> None:
    books = OpenApiBooks()
    books.add_trade(
        trade_no=TRADE, out_trade_no=None, amount=Decimal("1.00"), status="paid", today="x"
    )
    books.executions += [
        ("trade", TRADE, "r1", Decimal("1.00")),
        ("trade", TRADE, "r1", Decimal("1.00")),
    ]
    summary = books.summary()
    assert summary["double_executed"] == [
        {"kind": "trade", "number": TRADE, "out_request_no": "r1", "times": 2}
    ]
    assert summary["over_refunded"][0]["refunded"] == "2.00"


# -- checks ----------------------------------------------------------------------------------


def check(params: dict[str, str]) -> OpenApiCall | GatewayError:
    return check_call(b"", encode_form(params, "utf-8"), "", {APP: pair("app")[1]})


def refund() -> dict[str, str]:
    return trade_refund_request(
        app(), out_request_no="r1", amount=Decimal("5.00"), now=NOW, trade_no=TRADE
    )


def test_a_signed_refund_passes() -> None:
    call = check(refund())
    assert isinstance(call, OpenApiCall)
    assert call.amount == Decimal("5.00") and call.fields["out_request_no"] == "r1"


@pytest.mark.parametrize(
    ("change", "code", "sub_code"),
    [
        ({"app_id": "2021999999999999"}, "40002", "isv.invalid-app-id"),
        ({"sign": "AAAA"}, "40002", "isv.invalid-signature"),
        ({"refund_reason_extra": "x"}, "40002", "isv.invalid-signature"),
        ({"method": ""}, "40001", "isv.missing-method"),
        ({"timestamp": ""}, "40001", "isv.missing-timestamp"),
        ({"timestamp": "2024/05/06 01:02:03"}, "40002", "isv.invalid-timestamp"),
        ({"sign_type": "RSA"}, "40002", "isv.invalid-signature-type"),
        ({"charset": "gbk"}, "40002", "isv.invalid-charset"),
        ({"format": "XML"}, "40002", "isv.invalid-format"),
        ({"version": "2.0"}, "40002", "isv.invalid-version"),
    ],
)
def test_gateway_errors(change: dict[str, str], code: str, sub_code: str) -> None:
    params = {**refund(), **change}
    verdict = check({k: v for k, v in params.items() if v != "" or k == "sign"})
    assert isinstance(verdict, GatewayError)
    assert (verdict.code, verdict.sub_code) == (code, sub_code)
    assert verdict.signed is (sub_code != "isv.invalid-app-id")


def test_unknown_method_and_missing_field_after_a_good_signature() -> None:
    from worker.openapi import build_request

    unknown = build_request(
        app(), method="alipay.trade.pay", biz={"a": "b"}, now=NOW, notify_url=None
    )
    verdict = check(unknown)
    assert isinstance(verdict, GatewayError) and verdict.sub_code == "isv.invalid-method"
    missing = build_request(
        app(), method="alipay.trade.refund", biz={"trade_no": TRADE}, now=NOW, notify_url=None
    )
    verdict = check(missing)
    assert isinstance(verdict, GatewayError)
    assert (verdict.code, verdict.sub_code) == ("40001", "isv.missing-parameter")
    assert "out_request_no" in verdict.sub_msg


def test_coupon_call_keeps_its_notify_url() -> None:
    params = coupon_refund_request(
        app(),
        auth_no="A1",
        out_request_no="c1",
        amount=Decimal("1.00"),
        now=NOW,
        notify_url="http://127.0.0.1:9/n",
        remark="退回",
    )
    call = check(params)
    assert isinstance(call, OpenApiCall) and call.notify_url == "http://127.0.0.1:9/n"


# -- answers ---------------------------------------------------------------------------------

MEMBER = {"code": "10000", "msg": "Success", "fund_change": "Y", "note": "见 http://x/y"}


@pytest.mark.parametrize("bits", [None, *range(12)])
def test_every_shape_verifies_with_the_workers_reader(bits: int | None) -> None:
    shape = PLAIN if bits is None else shape_from(bits)
    body = write_answer("alipay_trade_refund_response", MEMBER, pair("alipay")[0], shape)
    answer = read_answer(body.decode("utf-8"), "alipay.trade.refund", pair("alipay")[1])
    assert isinstance(answer, Answer), answer
    assert answer.fields["note"] == "见 http://x/y" and answer.code == "10000"


def test_shapes_vary() -> None:
    bodies = {
        write_answer("alipay_trade_refund_response", MEMBER, pair("alipay")[0], shape_from(b))
        for b in range(12)
    }
    assert len(bodies) > 6
    assert any(b.startswith(b'{"sign"') for b in bodies)
    assert any(b"\\/" in b for b in bodies)


def test_unsigned_error_response_is_not_trusted() -> None:
    body = write_answer(
        "error_response", {"code": "40002", "msg": "x"}, pair("alipay")[0], signed=False
    )
    answer = read_answer(body.decode(), "alipay.trade.refund", pair("alipay")[1])
    assert isinstance(answer, Unverifiable) and answer.code == "40002"


def test_openapi_fault_scope() -> None:
    faults = parse_fault_set({"openapi": {"http_5xx": {"count": 1}}, "http_5xx": {"rate": 0.5}})
    assert set(faults.faults) == {"openapi.http_5xx", "http_5xx"}
    with pytest.raises(ConfigError, match="unknown openapi fault"):
        parse_fault_set({"openapi": {"lock_error": {}}})
    with pytest.raises(ConfigError, match="service"):
        parse_fault_set({"openapi": {"http_5xx": {"service": "notify_verify"}}})
