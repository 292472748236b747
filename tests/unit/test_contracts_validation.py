"""Schema validation: the compiled validator, ECMA-262 `$`, the formats and the wording."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import jsonschema
import jsonschema_rs
import pytest

from worker.contracts import validation
from worker.contracts.completed import build_refund_completed, validate_refund_completed
from worker.contracts.requested import parse_refund_requested
from worker.contracts.schema_files import (
    REFUND_COMPLETED_SCHEMA,
    REFUND_REQUESTED_SCHEMA,
    load_schema,
)
from worker.domain.errors import EventValidationError


def _request(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "event_id": "evt-1",
        "refund_id": "RF-1",
        "trade_no": "2024050122001456781234567890",
        "amount": "12.50",
        "trade_amount": "100.00",
    }
    base.update(fields)
    return base


def _completed(**fields: Any) -> dict[str, object]:
    return dict(
        build_refund_completed(
            refund_id="RF-1",
            trade_no="2024050122001456781234567890",
            amount=Decimal("12.50"),
            order_id="O-1",
            metadata=None,
            status="succeeded",
            code="SUCCESS",
            batch_no="20240501000000000001",
            completed_at=datetime(2024, 5, 1, tzinfo=UTC),
        ),
        **fields,
    )


def _patterns(schema: Any) -> list[str]:
    found: list[str] = []
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if isinstance(node.get("pattern"), str):
                found.append(node["pattern"])
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


def test_every_pattern_is_anchored_with_dollar() -> None:
    """The `$` rule below covers every pattern of the schema files."""
    for name in (REFUND_REQUESTED_SCHEMA, REFUND_COMPLETED_SCHEMA):
        patterns = _patterns(load_schema(name))
        assert patterns, name
        assert all(p.startswith("^") and p.endswith("$") for p in patterns), name


def test_jsonschema_rs_dollar_is_ecma_262() -> None:
    """ECMA-262 `$` does not match before a final newline; Python's `re` `$` does."""
    validator = jsonschema_rs.validator_for({"type": "string", "pattern": "^abc$"})
    assert validator.is_valid("abc")
    assert not validator.is_valid("abc\n")
    assert re.search("^abc$", "abc\n") is not None  # what the schemas must not mean


@pytest.mark.parametrize("field", ["refund_id", "trade_no", "amount", "trade_amount"])
def test_requested_fields_refuse_a_trailing_newline(field: str) -> None:
    document = _request()
    assert validation.schema_problem(REFUND_REQUESTED_SCHEMA, document) is None
    document[field] += "\n"
    assert not validation.compiled(REFUND_REQUESTED_SCHEMA).is_valid(document)
    assert not validation.explainer(REFUND_REQUESTED_SCHEMA).is_valid(document)
    problem = validation.schema_problem(REFUND_REQUESTED_SCHEMA, document)
    assert problem is not None and problem.startswith(f"{field}: ")


@pytest.mark.parametrize("field", ["event_id", "refund_id", "trade_no", "amount", "batch_no"])
def test_completed_fields_refuse_a_trailing_newline(field: str) -> None:
    event = _completed()
    event[field] = f"{event[field]}\n"
    assert not validation.compiled(REFUND_COMPLETED_SCHEMA).is_valid(event)
    with pytest.raises(EventValidationError) as caught:
        validate_refund_completed(event)
    assert caught.value.detail.startswith(f"{field}: ")


def test_trailing_newline_is_refused_from_the_wire() -> None:
    body = json.dumps(_request(trade_no="2088123412341234\n")).encode()
    with pytest.raises(EventValidationError) as caught:
        parse_refund_requested(body)
    assert caught.value.reason == "schema_violation"
    assert caught.value.detail.startswith("trade_no: '2088123412341234\\n' does not match")


@pytest.mark.parametrize(
    "text",
    ["0000-01-01T00:00:00Z", "2024-05-01T12:00:60Z", "2024-05-01T10:15:30", "2023-02-29T00:00:00Z"],
)
def test_date_time_is_what_parse_rfc3339_accepts(text: str) -> None:
    """Whatever passes the schema also parses: a timestamp never fails after validation."""
    document = _request(requested_at=text)
    assert not validation.compiled(REFUND_REQUESTED_SCHEMA).is_valid(document)
    body = json.dumps(document).encode()
    with pytest.raises(EventValidationError) as caught:
        parse_refund_requested(body)
    assert caught.value.reason == "schema_violation"
    assert caught.value.detail == f"requested_at: {text!r} is not a 'date-time'"


def test_event_id_format_is_uuid() -> None:
    event = _completed(event_id="{b3bdf6be-c59a-54ea-aa7c-d2c92e005903}")
    problem = validation.schema_problem(REFUND_COMPLETED_SCHEMA, event)
    assert problem is not None and problem.startswith("event_id: ")


class _Text(str):
    """A `str` subclass, as an ORM or a typed wrapper might hand over."""


def test_values_jsonschema_rs_cannot_take_are_judged_by_jsonschema() -> None:
    """A `str` subclass or an unpaired surrogate makes jsonschema_rs raise, not decide."""
    with pytest.raises(ValueError):
        validation.compiled(REFUND_COMPLETED_SCHEMA).is_valid(_completed(status=_Text("done")))
    validate_refund_completed(_completed(status=_Text("succeeded")))
    with pytest.raises(EventValidationError) as caught:
        validate_refund_completed(_completed(status=_Text("done")))
    assert caught.value.detail.startswith("status: ")
    with pytest.raises(EventValidationError) as caught:
        validate_refund_completed(_completed(refund_id="RF-\ud800"))
    assert caught.value.detail.startswith("refund_id: ")


def test_a_refusal_jsonschema_cannot_word_is_still_a_refusal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(validation, "explainer", lambda name: jsonschema.Draft202012Validator({}))
    problem = validation.schema_problem(REFUND_REQUESTED_SCHEMA, _request(amount="1.234"))
    assert problem is not None and problem.startswith("amount: ")
    assert validation.schema_problem(REFUND_REQUESTED_SCHEMA, _request()) is None


def test_validators_are_compiled_once() -> None:
    assert validation.compiled(REFUND_REQUESTED_SCHEMA) is validation.compiled(
        REFUND_REQUESTED_SCHEMA
    )
    assert validation.explainer(REFUND_COMPLETED_SCHEMA) is validation.explainer(
        REFUND_COMPLETED_SCHEMA
    )
