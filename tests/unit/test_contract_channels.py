"""The channels of `refund.requested` and `refund.completed`: what each one requires."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from worker.contracts.events import (
    build_refund_completed,
    parse_refund_requested,
    validate_refund_completed,
)
from worker.domain.errors import EventValidationError

TRADE_NO = "2024050122001456781234567890"
AUTH_NO = "2024050110002001890212345678"


def _body(**fields: object) -> bytes:
    doc: dict[str, object] = {"event_id": "e-1", "refund_id": "R-1", "amount": "5.00"}
    doc.update(fields)
    return json.dumps(doc).encode()


def test_a_message_without_channel_is_a_batch_refund_with_its_old_content_hash() -> None:
    old = parse_refund_requested(_body(trade_no=TRADE_NO))
    explicit = parse_refund_requested(_body(trade_no=TRADE_NO, channel="batch"))
    null = parse_refund_requested(_body(trade_no=TRADE_NO, channel=None))
    assert old.channel == explicit.channel == null.channel == "batch"
    assert not old.is_openapi
    assert "channel" not in old.content()
    assert old.content_hash() == explicit.content_hash() == null.content_hash()


def test_a_trade_refund_needs_trade_no_or_out_trade_no() -> None:
    by_out = parse_refund_requested(_body(channel="trade", out_trade_no="ORD-1"))
    assert by_out.trade_no is None and by_out.out_trade_no == "ORD-1" and by_out.is_openapi
    assert by_out.payment_key == "out_trade_no:ORD-1"
    by_trade = parse_refund_requested(_body(channel="trade", trade_no=TRADE_NO))
    assert by_trade.payment_key == TRADE_NO
    with pytest.raises(EventValidationError) as exc:
        parse_refund_requested(_body(channel="trade"))
    assert exc.value.reason == "schema_violation"
    with pytest.raises(EventValidationError):
        parse_refund_requested(_body(channel="trade", trade_no=TRADE_NO, auth_no=AUTH_NO))


def test_a_coupon_refund_needs_auth_no_and_no_trade_number() -> None:
    coupon = parse_refund_requested(_body(channel="coupon", auth_no=AUTH_NO))
    assert coupon.auth_no == AUTH_NO and coupon.channel == "coupon"
    assert coupon.payment_key == f"auth_no:{AUTH_NO}"
    for extra in ({}, {"auth_no": AUTH_NO, "trade_no": TRADE_NO}, {"out_trade_no": "O-1"}):
        with pytest.raises(EventValidationError) as exc:
            parse_refund_requested(_body(channel="coupon", **extra))
        assert exc.value.reason == "schema_violation"


def test_the_batch_channel_still_needs_trade_no_and_refuses_openapi_fields() -> None:
    for fields in ({}, {"channel": "batch"}, {"out_trade_no": "O-1"}):
        with pytest.raises(EventValidationError):
            parse_refund_requested(_body(**fields))
    with pytest.raises(EventValidationError):
        parse_refund_requested(_body(trade_no=TRADE_NO, auth_no=AUTH_NO))
    with pytest.raises(EventValidationError):
        parse_refund_requested(_body(trade_no=TRADE_NO, channel="wap"))


def test_the_channel_is_part_of_an_openapi_refunds_content() -> None:
    trade = parse_refund_requested(_body(channel="trade", trade_no=TRADE_NO))
    batch = parse_refund_requested(_body(trade_no=TRADE_NO))
    assert trade.content_hash() != batch.content_hash()


NOW = datetime(2024, 5, 1, 2, 20, tzinfo=UTC)


def _completed(**overrides: object) -> dict[str, object]:
    fields: dict[str, object] = {
        "refund_id": "R-1",
        "trade_no": None,
        "amount": Decimal("5.00"),
        "order_id": None,
        "metadata": None,
        "status": "succeeded",
        "code": "SUCCESS",
        "batch_no": None,
        "completed_at": NOW,
    }
    fields.update(overrides)
    return build_refund_completed(**fields)  # type: ignore[arg-type]


def test_a_coupon_completion_carries_its_channel_and_the_gateway_ids() -> None:
    event = _completed(
        channel="coupon",
        gateway_ids={
            "auth_no": AUTH_NO,
            "out_request_no": "R_1",
            "operation_id": "20240501000000012345",
            "gmt_refund_pay": "2024-05-01 10:19:58",
            "out_trade_no": None,
        },
    )
    assert event["channel"] == "coupon"
    assert event["operation_id"] == "20240501000000012345"
    assert "trade_no" not in event and "out_trade_no" not in event
    assert event["batch_no"] is None
    validate_refund_completed(event)


def test_a_trade_completion_keeps_the_trade_no_when_known() -> None:
    event = _completed(
        trade_no=TRADE_NO,
        channel="trade",
        gateway_ids={"out_request_no": "R_1", "gmt_refund_pay": "2024-05-01 10:19:58"},
    )
    assert event["trade_no"] == TRADE_NO and event["gmt_refund_pay"] == "2024-05-01 10:19:58"
    validate_refund_completed(event)
    no_trade_number = _completed(channel="trade", gateway_ids={"out_request_no": "R_1"})
    with pytest.raises(EventValidationError):
        validate_refund_completed(no_trade_number)


def test_a_batch_completion_is_unchanged() -> None:
    event = _completed(trade_no=TRADE_NO, batch_no="20240501000000000001")
    assert "channel" not in event and event["trade_no"] == TRADE_NO
    validate_refund_completed(event)
    with pytest.raises(EventValidationError):
        validate_refund_completed(_completed(trade_no=TRADE_NO))  # succeeded without its batch


def test_an_openapi_completion_needs_its_out_request_no_and_no_batch() -> None:
    good = _completed(channel="coupon", gateway_ids={"auth_no": AUTH_NO, "out_request_no": "R_1"})
    validate_refund_completed(good)
    with pytest.raises(EventValidationError):
        validate_refund_completed({**good, "batch_no": "20240501000000000001"})
    without = dict(good)
    del without["out_request_no"]
    with pytest.raises(EventValidationError):
        validate_refund_completed(without)
