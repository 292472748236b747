"""Every shape of `refund.completed` the worker builds is valid against `schemas/`.

`build_refund_completed` does not validate at run time (see its docstring), so these
tests are what holds it to the schema: ledger `Completion` records of every kind (batch
success and failure, rejected before batching, each OpenAPI channel, with and without
the optional fields, Chinese text) go through `completion_rows`, the function that
writes the outbox rows the relay publishes, and each body is validated as published,
with `validate_refund_completed` and with plain `jsonschema` on the schema file.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from worker.adapters.postgres import ledger
from worker.contracts.events import completed_event_id, validate_refund_completed
from worker.services.outcomes import completion_rows

SCHEMA = json.loads(
    (Path(__file__).resolve().parents[2] / "schemas/refund.completed.v1.json").read_text("utf-8")
)
VALIDATOR = jsonschema.Draft202012Validator(
    SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
)
TRADE_NO = "2024050122001456781234567890"
AUTH_NO = "2024050110002001890212345678"
WHEN = datetime(2024, 5, 1, 10, 20, 0, 512000, tzinfo=timezone(timedelta(hours=8)))


def _published(completion: ledger.Completion) -> dict[str, Any]:
    """The event as the relay publishes it, checked against the schema both ways."""
    [(event_id, routing_key, body)] = completion_rows([completion])
    event: dict[str, Any] = json.loads(body)
    validate_refund_completed(event)
    errors = [e.message for e in VALIDATOR.iter_errors(event)]
    assert errors == [], errors
    assert routing_key == "refund.completed"
    assert event_id == event["event_id"] == completed_event_id(completion.refund_id)
    return event


def _completion(**fields: Any) -> ledger.Completion:
    base: dict[str, Any] = {
        "refund_id": "RF-1",
        "trade_no": TRADE_NO,
        "amount": Decimal("12.50"),
        "order_id": "O-1",
        "metadata": {"channel": "app"},
        "status": "succeeded",
        "code": "SUCCESS",
        "batch_no": "20240501000000000001",
        "completed_at": WHEN,
    }
    base.update(fields)
    return ledger.Completion(**base)


_OPENAPI_IDS = {"out_request_no": "RF_1", "gmt_refund_pay": "2024-05-01 10:19:58"}


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({}, id="batch-succeeded"),
        pytest.param({"status": "failed", "code": "TRADE_STATUS_ERROR"}, id="batch-failed"),
        pytest.param(
            {"partner": "2088000000000001", "order_id": None, "metadata": None},
            id="batch-merchant-no-optional",
        ),
        pytest.param(
            {"status": "rejected", "code": "REFUND_TOTAL_EXCEEDS_TRADE_AMOUNT", "batch_no": None},
            id="batch-rejected",
        ),
        pytest.param(
            {"order_id": "订单-1", "metadata": {"备注": "用户申请退款", "原因": ["质量问题"]}},
            id="chinese-text",
        ),
        pytest.param(
            {"channel": "trade", "batch_no": None, "gateway_ids": _OPENAPI_IDS}, id="trade"
        ),
        pytest.param(
            {
                "channel": "trade",
                "trade_no": None,
                "batch_no": None,
                "gateway_ids": {"out_trade_no": "ORD-1", "out_request_no": "RF_1"},
            },
            id="trade-by-out-trade-no",
        ),
        pytest.param(
            {
                "channel": "trade",
                "status": "rejected",
                "code": "CHANNEL_NOT_CONFIGURED",
                "batch_no": None,
                "gateway_ids": {"out_request_no": "RF_1", "gmt_refund_pay": None},
            },
            id="trade-rejected",
        ),
        pytest.param(
            {
                "channel": "coupon",
                "trade_no": None,
                "batch_no": None,
                "gateway_ids": {
                    "auth_no": AUTH_NO,
                    "out_request_no": "RF_1",
                    "operation_id": "20240501000000012345",
                    "gmt_refund_pay": "2024-05-01 10:19:58",
                    "out_trade_no": None,
                },
            },
            id="coupon",
        ),
        pytest.param(
            {
                "channel": "coupon",
                "trade_no": None,
                "batch_no": None,
                "status": "failed",
                "code": "ACQ.SYSTEM_ERROR",
                "gateway_ids": {"auth_no": AUTH_NO, "out_request_no": "RF_1"},
            },
            id="coupon-failed",
        ),
    ],
)
def test_each_shape_is_valid_as_published(fields: dict[str, Any]) -> None:
    event = _published(_completion(**fields))
    assert event["completed_at"] == "2024-05-01T02:20:00.512000Z"


# --- every shape, generated --------------------------------------------------------

_chinese = st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF)
_text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]) | _chinese, max_size=40)
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**12), 10**12) | _text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=8,
)
_codes = st.from_regex(r"\A[A-Z][A-Z0-9_.]{0,40}\Z").filter(lambda c: c != "SUCCESS")
_zones = st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))


def _maybe(values: st.SearchStrategy[str]) -> st.SearchStrategy[str | None]:
    return st.none() | values


@st.composite
def completions(draw: st.DrawFn) -> ledger.Completion:
    """A final refund as the ledger hands it over, of any channel and outcome."""
    channel = draw(st.sampled_from(["batch", "trade", "coupon"]))
    status = draw(st.sampled_from(["succeeded", "failed", "rejected"]))
    code = "SUCCESS" if status == "succeeded" else draw(_codes)
    trade_no = draw(st.from_regex(r"\A[0-9]{16,64}\Z"))
    ids: dict[str, str | None] = {}
    batch_no = None
    if channel == "batch":
        if status != "rejected":
            batch_no = draw(st.from_regex(r"\A[0-9]{8}[0-9A-Za-z]{3,24}\Z"))
    else:
        ids["out_request_no"] = draw(st.from_regex(r"\A[A-Za-z0-9_]{1,64}\Z"))
        ids["gmt_refund_pay"] = draw(_maybe(st.just("2024-05-01 10:19:58")))
        if channel == "trade":
            ids["out_trade_no"] = draw(_maybe(st.text(_chinese | st.just("O"), min_size=1)))
            if ids["out_trade_no"] is not None and draw(st.booleans()):
                trade_no = None  # known only by the merchant's order number
        else:
            trade_no = None
            ids["auth_no"] = draw(st.from_regex(r"\A[A-Za-z0-9]{1,64}\Z"))
            ids["operation_id"] = draw(_maybe(st.from_regex(r"\A[0-9]{1,64}\Z")))
    moment = draw(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)))
    return ledger.Completion(
        refund_id=draw(st.from_regex(r"\A[A-Za-z0-9_.:-]{1,64}\Z")),
        trade_no=trade_no,
        amount=Decimal(draw(st.integers(1, 10_000_000_000))) / 100,
        order_id=draw(_maybe(st.text(_chinese | st.characters(codec="ascii"), min_size=1))),
        metadata=draw(st.none() | st.dictionaries(_text, _json, max_size=4)),
        status=status,
        code=code,
        batch_no=batch_no,
        completed_at=moment.replace(tzinfo=draw(_zones)),
        partner=draw(_maybe(st.from_regex(r"\A2088[0-9]{12}\Z"))),
        channel=channel,
        gateway_ids=ids if draw(st.booleans()) else {k: v for k, v in ids.items() if v},
    )


@settings(max_examples=400)
@given(completions())
def test_every_generated_completion_is_valid_as_published(completion: ledger.Completion) -> None:
    event = _published(completion)
    assert event["status"] == completion.status
    assert ("channel" in event) == (completion.channel != "batch")
    assert event["completed_at"].endswith("Z")
    assert Decimal(event["amount"]) == completion.amount


def test_the_completed_examples_of_the_schema_are_shapes_the_worker_builds() -> None:
    # The contract tests on schemas/examples (tests/unit/test_events.py) check the files;
    # this checks that the builder's batch success matches the documented example keys.
    examples = sorted(
        (Path(__file__).resolve().parents[2] / "schemas/examples/valid").glob(
            "refund.completed__*.json"
        )
    )
    assert examples
    built = set(_published(_completion()))
    assert any(set(json.loads(p.read_text("utf-8"))) == built for p in examples)
