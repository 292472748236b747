"""The refund query: reading the request, searching the books, writing the answer."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from sandbox.external import external_batch_no, plan_external
from sandbox.ledger import Ledger, TradeRecord
from sandbox.protocol import SKIPPED, SUCCESS
from sandbox.query import (
    REFUND_NOT_EXIST,
    RefundQuery,
    bank_card_fields,
    found_answer,
    matching_items,
    refusal_answer,
)
from sandbox.records import BatchRecord, ExternalRefundRecord
from sandbox.validation import GatewayContext, Refusal, check_gateway_request
from tests.support.sandbox import PARTNER, merchant_rsa_keys, query_items, query_params, resign
from worker.mapi import beijing_date, decode_form, encode_form

KEY = "0123456789abcdef0123456789abcdef"
NOW = datetime(2026, 11, 22, 1, 30, tzinfo=UTC)
PRIVATE, PUBLIC = merchant_rsa_keys()
CTX = GatewayContext.single(PARTNER, KEY, PUBLIC, beijing_date(NOW))
T1, T2, T3 = (f"20161122210010042700000000{i:02d}" for i in (1, 2, 3))
AT = "2026-11-22T01:00:00+00:00"
D = Decimal


def check(params: dict[str, str], *, get: bool = False) -> object:
    charset = params.get("_input_charset", "utf-8")
    if get:
        return check_gateway_request(encode_form(params, charset), b"", "", CTX)
    return check_gateway_request(
        f"_input_charset={charset}".encode(),
        encode_form(params, charset),
        "application/x-www-form-urlencoded",
        CTX,
    )


# --- the request ------------------------------------------------------------------


def test_a_signed_query_by_batch_no_passes() -> None:
    verdict = check(query_params(md5_key=KEY, batch_no="20261122001"))
    assert verdict == RefundQuery(PARTNER, "utf-8", "MD5", "20261122001", None)


def test_a_get_query_by_trade_no_in_gbk_passes() -> None:
    verdict = check(query_params(md5_key=KEY, trade_no=T1, charset="gbk"), get=True)
    assert verdict == RefundQuery(PARTNER, "gbk", "MD5", None, T1)


def test_an_rsa_signed_query_by_both_passes() -> None:
    p = query_params(private_key=PRIVATE, sign_type="RSA", batch_no="20261122001", trade_no=T1)
    assert check(p) == RefundQuery(PARTNER, "utf-8", "RSA", "20261122001", T1)


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"partner": "2088999999999999"}, "ILLEGAL_PARTNER"),
        ({"_input_charset": "latin-1"}, "ILLEGAL_CHARSET"),
        ({"sign_type": "DSA"}, "ILLEGAL_SIGN_TYPE"),
        ({"sign": "0" * 32}, "ILLEGAL_SIGN"),
        ({"batch_no": None}, "ILLEGAL_ARGUMENT"),
    ],
)
def test_refusals_use_the_refund_services_codes(change: dict[str, str | None], code: str) -> None:
    p = query_params(md5_key=KEY, batch_no="20261122001")
    for key, value in change.items():
        if value is None:
            p.pop(key)
        else:
            p[key] = value
    if "sign" not in change:
        p = resign(p, md5_key=KEY, charset="utf-8")
    verdict = check_gateway_request(b"", encode_form(p, "utf-8"), "", CTX)
    assert isinstance(verdict, Refusal)
    assert (verdict.code, verdict.service) == (code, "refund_fastpay_query")


def test_the_partner_is_checked_before_the_signature() -> None:
    p = query_params(md5_key="wrong", batch_no="20261122001", partner="2088999999999999")
    verdict = check(p)
    assert isinstance(verdict, Refusal) and verdict.code == "ILLEGAL_PARTNER"


# --- the books --------------------------------------------------------------------


def batch(batch_no: str, ts: float, *items: tuple[str, str, str]) -> BatchRecord:
    return BatchRecord(
        ts=ts,
        at=AT,
        service="refund_fastpay_by_platform_nopwd",
        charset="utf-8",
        sign_type="MD5",
        batch_no=batch_no,
        refund_date="2026-11-22 09:00:00",
        notify_url=None,
        notify_id=None,
        items=tuple((t, D(a), "r", c, False) for t, a, c in items),
        auto_amount=None,
    )


EXT = ExternalRefundRecord(T1, D("2.00"), ("20261122EXT000001", "20261122EXT000002"), "x", 5.0, AT)
B1 = batch("20261122001", 1.0, (T1, "1.00", SUCCESS), (T2, "3.00", "TRADE_HAS_CLOSED"))
B2 = batch("20261122002", 9.0, (T1, "1.00", SKIPPED), (T3, "4.00", SUCCESS))


def test_by_batch_no_every_processed_item_of_that_batch() -> None:
    assert matching_items([B1], trade_no=None) == [
        ("20261122001", T1, "1.00", SUCCESS),
        ("20261122001", T2, "3.00", "TRADE_HAS_CLOSED"),
    ]
    assert matching_items([B2], trade_no=None) == [("20261122002", T3, "4.00", SUCCESS)]


def test_by_trade_no_every_refund_of_the_trade_oldest_first() -> None:
    assert matching_items([B2, EXT, B1], trade_no=T1) == [
        ("20261122001", T1, "1.00", SUCCESS),
        ("20261122EXT000001", T1, "2.00", SUCCESS),
        ("20261122EXT000002", T1, "2.00", SUCCESS),
    ]


def test_by_both_the_intersection_and_skipped_items_are_not_found() -> None:
    assert matching_items([B1], trade_no=T2) == [("20261122001", T2, "3.00", "TRADE_HAS_CLOSED")]
    assert matching_items([B2], trade_no=T1) == []
    assert matching_items([B1], trade_no=T3) == []


def test_the_ledger_gives_one_external_refund_by_its_batch_no() -> None:
    ledger = Ledger()
    ledger.apply(TradeRecord(T1, D("10.00"), "paid", 0.0, AT))
    ledger.apply(EXT)
    (only,) = ledger.query_records("20261122EXT000002", partner=PARTNER)
    assert matching_items([only], trade_no=None) == [("20261122EXT000002", T1, "2.00", SUCCESS)]
    assert ledger.query_records("20261122EXT000009", partner=PARTNER) == []
    assert ledger.is_accepted("20261122EXT000001", partner=PARTNER)
    assert len(ledger.query_records(None, partner=PARTNER)) == 1
    trade = ledger.trades[T1]
    assert (len(trade.executions), trade.refunded) == (2, D("4.00"))


def test_external_refunds_count_toward_the_limits() -> None:
    ledger = Ledger()
    ledger.apply(TradeRecord(T1, D("100.00"), "paid", 0.0, AT))
    today = date(2026, 11, 22)

    def plan(count: int, amount: str) -> ExternalRefundRecord:
        data = {"trade_no": T1, "count": count, "amount_each": amount}
        return plan_external(
            ledger, data, today=today, auto_amount=None, ts=1.0, at=AT, partner=PARTNER
        )

    record = plan(98, "1.00")
    assert record.batch_nos[0] == external_batch_no(today, 1) == "20261122EXT000001"
    ledger.apply(record)
    with pytest.raises(ValueError, match="exceed 99"):
        plan(2, "0.01")
    with pytest.raises(ValueError, match="paid amount"):
        plan(1, "2.01")
    ledger.apply(plan(1, "2.00"))
    assert len(ledger.trades[T1].executions) == 99
    planned = ledger.plan_items([(T1, D("0.01"), "r")], auto_amount=None, item_fault=None)
    assert planned[0][3] == "TRADE_STATUS_ERROR"
    skipped = ledger.plan_items(
        [(T1, D("0.01"), "r")], auto_amount=None, item_fault=None, limit_code=SKIPPED
    )
    assert skipped[0][3] == SKIPPED


def test_an_unknown_trade_is_refused_unless_auto_trades_create_it() -> None:
    ledger = Ledger()
    data = {"trade_no": T1, "count": 1, "amount_each": "1.00"}
    with pytest.raises(ValueError, match="unknown"):
        plan_external(
            ledger, data, today=date(2026, 11, 22), auto_amount=None, ts=1.0, at=AT, partner=PARTNER
        )
    record = plan_external(
        ledger,
        data,
        today=date(2026, 11, 22),
        auto_amount=D("50.00"),
        ts=1.0,
        at=AT,
        partner=PARTNER,
    )
    ledger.apply(record)
    assert (ledger.trades[T1].paid, ledger.trades[T1].auto) == (D("50.00"), True)


# --- the answer -------------------------------------------------------------------


def test_found_answer_is_a_url_encoded_form() -> None:
    items = [("20261122001", T1, "1.00", SUCCESS), ("20261122001", T2, "3.00", "TRADE_HAS_CLOSED")]
    body = found_answer(items, "utf-8")
    assert body.startswith(b"is_success=T&result_details=20261122001%5E")
    assert b"^" not in body and b"#" not in body
    answer = decode_form(body, "utf-8")
    assert answer["is_success"] == "T"
    assert query_items(answer) == items
    entries = answer["result_details"].split("#")
    for (b, t, _, c), entry in zip(items, entries, strict=True):
        assert entry.endswith(bank_card_fields(b, t, c))


def test_bank_card_fields_are_fixed_per_entry_and_y_only_on_success() -> None:
    seen = {bank_card_fields(f"20261122{n:03d}", T1, SUCCESS) for n in range(100)}
    assert seen == {"", "^N^", "^Y^S"}
    failed = {bank_card_fields(f"20261122{n:03d}", T1, "TRADE_HAS_CLOSED") for n in range(100)}
    assert failed == {"", "^N^"}
    assert bank_card_fields("20261122001", T1, SUCCESS) == bank_card_fields(
        "20261122001", T1, SUCCESS
    )


def test_refusal_answer_in_the_request_charset_else_gbk() -> None:
    assert refusal_answer(REFUND_NOT_EXIST, "UTF-8") == (
        b"is_success=F&error_code=REFUND_NOT_EXIST",
        "text/plain; charset=utf-8",
    )
    assert refusal_answer("ILLEGAL_CHARSET", "latin-1")[1] == "text/plain; charset=gbk"
    assert refusal_answer("ILLEGAL_SIGN", None)[1] == "text/plain; charset=gbk"
