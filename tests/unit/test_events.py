"""Event contracts: the schema files, their examples, parsing and building events."""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from worker.contracts import events, validation
from worker.contracts.events import (
    COMPLETED_EVENT_NAMESPACE,
    REFUND_COMPLETED_SCHEMA,
    REFUND_REQUESTED_SCHEMA,
    RefundRequest,
    build_refund_completed,
    completed_event_id,
    load_schema,
    parse_refund_requested,
    parse_rfc3339,
    validate_refund_completed,
)
from worker.domain.errors import EventValidationError

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
EXAMPLES = SCHEMAS / "examples"
REASONS = {"invalid_json", "invalid_encoding", "schema_violation", "amount_out_of_range"}


def _examples(kind: str) -> list[Path]:
    found = sorted((EXAMPLES / kind).glob("*.json"))
    assert found, f"no examples in {kind}"
    return found


def _body(**fields: Any) -> bytes:
    base: dict[str, Any] = {
        "event_id": "evt-1",
        "refund_id": "RF-1",
        "trade_no": "2024050122001456781234567890",
        "amount": "12.50",
    }
    base.update(fields)
    return json.dumps({k: v for k, v in base.items() if v is not ...}).encode()


def _reason(body: bytes) -> tuple[str, str]:
    with pytest.raises(EventValidationError) as caught:
        parse_refund_requested(body)
    return caught.value.reason, caught.value.detail


# --------------------------------------------------------------------------
# Schema files and examples
# --------------------------------------------------------------------------


@pytest.mark.parametrize("name", [REFUND_REQUESTED_SCHEMA, REFUND_COMPLETED_SCHEMA])
def test_schema_files_are_valid_2020_12_schemas(name: str) -> None:
    schema = json.loads((SCHEMAS / name).read_text("utf-8"))
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)
    assert load_schema(name) == schema


@pytest.mark.parametrize("name", [REFUND_REQUESTED_SCHEMA, REFUND_COMPLETED_SCHEMA])
def test_schemas_ship_inside_the_package(name: str) -> None:
    packaged = importlib.resources.files("worker.contracts") / "schemas" / name
    assert packaged.read_bytes() == (SCHEMAS / name).read_bytes()


@pytest.mark.parametrize("path", _examples("valid"), ids=lambda p: p.name)
def test_valid_examples_are_accepted(path: Path) -> None:
    kind = path.name.split("__")[0]
    body = path.read_bytes()
    if kind == "refund.requested":
        request = parse_refund_requested(body)
        assert request.refund_id == json.loads(body)["refund_id"]
    else:
        assert kind == "refund.completed"
        validate_refund_completed(json.loads(body))


@pytest.mark.parametrize("path", _examples("invalid"), ids=lambda p: p.name)
def test_invalid_examples_fail_with_the_reason_in_their_name(path: Path) -> None:
    kind, expected, _ = path.name.split("__")
    assert expected in REASONS
    with pytest.raises(EventValidationError) as caught:
        if kind == "refund.requested":
            parse_refund_requested(path.read_bytes())
        else:
            assert kind == "refund.completed"
            validate_refund_completed(json.loads(path.read_bytes()))
    assert caught.value.reason == expected, caught.value.detail
    assert caught.value.detail and "\n" not in caught.value.detail


def test_every_reason_has_an_invalid_example() -> None:
    names = [p.name for p in _examples("invalid") if p.name.startswith("refund.requested__")]
    assert {name.split("__")[1] for name in names} == REASONS


def test_plain_jsonschema_agrees_on_the_schema_level_examples() -> None:
    """Another consumer with any 2020-12 validator gets the same verdict from the files."""
    requested = jsonschema.Draft202012Validator(load_schema(REFUND_REQUESTED_SCHEMA))
    for path in _examples("valid"):
        if path.name.startswith("refund.requested__"):
            assert requested.is_valid(json.loads(path.read_bytes())), path.name
    for name in ("missing-amount", "amount-three-decimals", "unknown-field", "refund-id-space"):
        doc = json.loads(
            (EXAMPLES / "invalid" / f"refund.requested__schema_violation__{name}.json").read_bytes()
        )
        assert not requested.is_valid(doc), name


# --------------------------------------------------------------------------
# parse_refund_requested
# --------------------------------------------------------------------------


def test_parse_returns_typed_fields() -> None:
    body = _body(
        amount="7.5",
        trade_amount="100",
        reason="破损",
        order_id="O-1",
        metadata={"b": 1, "a": [1, 2]},
        requested_at="2024-05-01T10:15:30.5+08:00",
    )
    request = parse_refund_requested(body)
    assert request == RefundRequest(
        event_id="evt-1",
        refund_id="RF-1",
        trade_no="2024050122001456781234567890",
        amount=Decimal("7.50"),
        reason="破损",
        trade_amount=Decimal("100.00"),
        order_id="O-1",
        metadata={"b": 1, "a": [1, 2]},
        requested_at=datetime(2024, 5, 1, 2, 15, 30, 500000, tzinfo=UTC),
    )
    assert str(request.amount) == "7.50"
    assert request.requested_at is not None
    assert request.requested_at.utcoffset() == timedelta(hours=8)


def test_null_optional_fields_are_absent() -> None:
    request = parse_refund_requested(
        _body(reason=None, trade_amount=None, order_id=None, metadata=None, requested_at=None)
    )
    assert request == parse_refund_requested(_body())
    assert request.reason is None and request.metadata is None


def test_bom_is_ignored() -> None:
    assert parse_refund_requested(b"\xef\xbb\xbf" + _body()).refund_id == "RF-1"


@pytest.mark.parametrize(
    ("body", "reason", "detail"),
    [
        (b"\xff\xfe{}", "invalid_encoding", "body is not UTF-8 (bad byte at offset 0)"),
        (b"", "invalid_json", "Expecting value"),
        (b'{"a": 1} {"b": 2}', "invalid_json", "Extra data"),
        (b'{"amount": "1.00", "amount": "2.00"}', "invalid_json", "duplicate key 'amount'"),
        (b'{"x": Infinity}', "invalid_json", "Infinity is not JSON"),
        (b'{"x": -1e999}', "invalid_json", "too large"),
        (b"[" * 50_000 + b"]" * 50_000, "invalid_json", "recursion"),
        (b"42", "schema_violation", "(event): must be a JSON object, got int"),
        (_body(amount=...), "schema_violation", "(event): 'amount' is a required property"),
        (_body(amount="1.234"), "schema_violation", "amount: '1.234' does not match"),
        (_body(amount=5), "schema_violation", "amount: 5 is not of type 'string'"),
        (_body(trade_no="2088123412341234\n"), "schema_violation", "trade_no:"),
        (_body(extra=1), "schema_violation", "('extra' was unexpected)"),
        (_body(requested_at="yesterday"), "schema_violation", "requested_at: 'yesterday' is not"),
        (_body(reason="a\u0000b"), "invalid_encoding", "reason: contains NUL"),
        (_body(metadata={"k\ud800": 1}), "invalid_encoding", "metadata: a key contains"),
        (_body(metadata={"l": ["ok", "\udfff"]}), "invalid_encoding", "metadata.l.1: contains"),
        (_body(amount="0"), "amount_out_of_range", "amount: must be greater than 0 (got '0')"),
        (
            _body(amount="999999999.99"),
            "amount_out_of_range",
            "amount: must be at most 100000000.00 (got '999999999.99')",
        ),
        (_body(trade_amount="0.00"), "amount_out_of_range", "trade_amount: must be greater"),
    ],
)
def test_rejections_name_reason_and_field(body: bytes, reason: str, detail: str) -> None:
    got_reason, got_detail = _reason(body)
    assert got_reason == reason
    assert detail in got_detail


def test_too_large_message() -> None:
    body = _body(reason="x" * (events.MAX_EVENT_BYTES + 1))
    assert _reason(body)[0] == "too_large"


def test_detail_is_bounded() -> None:
    reason, detail = _reason(_body(metadata=["x" * 10_000]))
    assert reason == "schema_violation"
    assert len(detail) <= 300


def test_metadata_depth_limit() -> None:
    deep: Any = 1
    for _ in range(events.MAX_METADATA_DEPTH):
        deep = {"a": deep}
    assert parse_refund_requested(_body(metadata=deep)).metadata == deep
    assert _reason(_body(metadata={"a": deep}))[0] == "schema_violation"


def test_non_bytes_input_is_an_event_error() -> None:
    with pytest.raises(EventValidationError):
        parse_refund_requested("not bytes")  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_raise_only_event_validation_errors(body: bytes) -> None:
    try:
        parse_refund_requested(body)
    except EventValidationError as exc:
        assert exc.reason in REASONS | {"too_large"}


_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
_good_amounts = st.from_regex(r"\A(0|[1-9][0-9]{0,8})(\.[0-9]{1,2})?\Z")
_bad_amounts = st.sampled_from(["1.234", "01", "-1", "1e3", "1.", ".5", "12.5\n", "１２"])
# field: (values that pass the schema, values that break it)
_REQUIRED = {
    "event_id": (st.text(min_size=1, max_size=128), st.sampled_from(["", "e" * 129])),
    "refund_id": (
        st.from_regex(r"\A[A-Za-z0-9_.:-]{1,64}\Z"),
        st.sampled_from(["", "a b", "R" * 65, "r\n", "ré"]),
    ),
    "trade_no": (
        st.from_regex(r"\A[0-9]{16,64}\Z"),
        st.sampled_from(["123", "2088123412341234\n", "1" * 65, "２０８８" * 4]),
    ),
    "amount": (_good_amounts, _bad_amounts),
}
_OPTIONAL = {
    "reason": st.none() | st.text(max_size=20) | st.just("r" * 4097),
    "trade_amount": st.none() | _good_amounts | _bad_amounts,
    "order_id": st.none() | st.text(max_size=130),
    "metadata": st.none() | st.dictionaries(st.text(max_size=5), _json_values, max_size=3),
    "requested_at": st.none()
    | st.sampled_from(["2024-05-01T10:15:30Z", "2024-05-01T10:15:30", "2016-12-31T23:59:60Z"]),
}
_KEYS = [*_REQUIRED, *_OPTIONAL, "other"]
_ONE_IN_TEN = st.sampled_from([False] * 9 + [True])


@st.composite
def _documents(draw: st.DrawFn) -> dict[str, Any]:
    """Mostly well-formed events, some with a field broken, dropped or added."""
    doc: dict[str, Any] = {}
    for name, (good, bad) in _REQUIRED.items():
        doc[name] = draw(bad if draw(_ONE_IN_TEN) else good)
    doc.update(draw(st.fixed_dictionaries({}, optional=_OPTIONAL)))
    if draw(_ONE_IN_TEN):
        doc.update(draw(st.dictionaries(st.sampled_from(_KEYS), _json_values, max_size=2)))
    if draw(_ONE_IN_TEN):
        doc.pop(draw(st.sampled_from(_KEYS)), None)
    return doc


@settings(max_examples=400, deadline=None)
@given(_documents())
def test_structured_garbage_raises_only_event_validation_errors(doc: dict[str, Any]) -> None:
    body = json.dumps(doc).encode()
    try:
        request = parse_refund_requested(body)
    except EventValidationError as exc:
        assert exc.reason in REASONS
    else:
        assert Decimal("0") < request.amount <= Decimal("100000000.00")
        assert request.amount == request.amount.quantize(Decimal("0.01"))


@settings(max_examples=400, deadline=None)
@given(_documents())
def test_compiled_validator_agrees_with_jsonschema(doc: dict[str, Any]) -> None:
    compiled = validation.compiled(REFUND_REQUESTED_SCHEMA)
    assert compiled.is_valid(doc) == validation.explainer(REFUND_REQUESTED_SCHEMA).is_valid(doc)


# --------------------------------------------------------------------------
# content_hash
# --------------------------------------------------------------------------


def test_same_content_same_hash() -> None:
    first = parse_refund_requested(
        _body(amount="12.5", metadata={"a": 1, "b": {"c": 2, "d": 3}}, requested_at=None)
    )
    second = parse_refund_requested(
        _body(
            event_id="evt-2",
            amount="12.50",
            metadata={"b": {"d": 3, "c": 2}, "a": 1},
            requested_at="2024-05-01T00:00:00Z",
        )
    )
    assert first.content_hash() == second.content_hash()
    assert parse_refund_requested(_body(reason=None)).content_hash() == (
        parse_refund_requested(_body()).content_hash()
    )


@pytest.mark.parametrize(
    "change",
    [
        {"amount": "12.51"},
        {"trade_no": "2024050122001456781234567891"},
        {"reason": "other"},
        {"trade_amount": "100.00"},
        {"order_id": "O-2"},
        {"metadata": {"a": 2}},
        {"refund_id": "RF-2"},
    ],
)
def test_changed_content_changes_the_hash(change: dict[str, Any]) -> None:
    base = parse_refund_requested(_body(metadata={"a": 1}))
    changed = parse_refund_requested(_body(**{"metadata": {"a": 1}, **change}))
    assert base.content_hash() != changed.content_hash()


def test_content_hash_is_stable() -> None:
    request = parse_refund_requested(_body(reason="退款", metadata={"x": [1, "y"]}))
    canonical = (
        '{"amount":"12.50","metadata":{"x":[1,"y"]},"order_id":null,"reason":"退款",'
        '"refund_id":"RF-1","trade_amount":null,"trade_no":"2024050122001456781234567890"}'
    )
    assert request.content_hash() == hashlib.sha256(canonical.encode()).hexdigest()


@settings(max_examples=200, deadline=None)
@given(st.decimals(min_value=Decimal("0.01"), max_value=Decimal("100000000.00"), places=2))
def test_hash_depends_on_amount_value_only(amount: Decimal) -> None:
    one = parse_refund_requested(_body(amount=f"{amount:f}"))
    two = parse_refund_requested(_body(amount=f"{amount.normalize():f}"))
    assert one.content_hash() == two.content_hash()
    other = amount + Decimal("0.01") if amount < Decimal("100000000.00") else Decimal("0.01")
    bumped = parse_refund_requested(_body(amount=f"{other:f}"))
    assert bumped.content_hash() != one.content_hash()


# --------------------------------------------------------------------------
# RFC 3339
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-01T10:15:30Z", datetime(2024, 5, 1, 10, 15, 30, tzinfo=UTC)),
        ("2024-05-01t10:15:30z", datetime(2024, 5, 1, 10, 15, 30, tzinfo=UTC)),
        (
            "2024-05-01T10:15:30.1234567-05:30",
            datetime(
                2024, 5, 1, 10, 15, 30, 123456, tzinfo=timezone(-timedelta(hours=5, minutes=30))
            ),
        ),
        ("2024-02-29T00:00:00+00:00", datetime(2024, 2, 29, tzinfo=UTC)),
        ("2016-12-31T23:59:60Z", datetime(2016, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)),
        (
            "2017-01-01T07:59:60+08:00",
            datetime(2017, 1, 1, 7, 59, 59, 999999, tzinfo=timezone(timedelta(hours=8))),
        ),
    ],
)
def test_rfc3339_accepts(text: str, expected: datetime) -> None:
    parsed = parse_rfc3339(text)
    assert parsed == expected and parsed.utcoffset() == expected.utcoffset()


@pytest.mark.parametrize(
    "text",
    [
        "2024-05-01",
        "2024-05-01T10:15:30",
        "2024-05-01 10:15:30Z",
        "2023-02-29T00:00:00Z",
        "2024-13-01T00:00:00Z",
        "2024-05-01T24:00:00Z",
        "2024-05-01T10:60:00Z",
        "2024-05-01T10:15:30+24:00",
        "2024-05-01T10:15:30+0800",
        "2024-05-01T12:00:60Z",
        "0000-01-01T00:00:00Z",
        "2024-05-01T10:15:30Z\n",
        "２０２４-05-01T10:15:30Z",
    ],
)
def test_rfc3339_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_rfc3339(text)


# --------------------------------------------------------------------------
# refund.completed
# --------------------------------------------------------------------------


def test_completed_event_id_is_a_stable_uuid5() -> None:
    assert (
        uuid.uuid5(uuid.NAMESPACE_URL, "urn:alipay-refund-worker:refund.completed")
        == COMPLETED_EVENT_NAMESPACE
    )
    first = completed_event_id("RF-1")
    assert first == completed_event_id("RF-1")
    assert first == str(uuid.uuid5(COMPLETED_EVENT_NAMESPACE, "RF-1"))
    assert uuid.UUID(first).version == 5
    assert completed_event_id("RF-2") != first


def _completed(**overrides: Any) -> dict[str, object]:
    fields: dict[str, Any] = {
        "refund_id": "RF-1",
        "trade_no": "2024050122001456781234567890",
        "amount": Decimal("12.5"),
        "order_id": "O-1",
        "metadata": {"channel": "app"},
        "status": "succeeded",
        "code": "SUCCESS",
        "batch_no": "20240501000000000001",
        "completed_at": datetime(
            2024, 5, 1, 10, 20, 0, 512000, tzinfo=timezone(timedelta(hours=8))
        ),
    }
    fields.update(overrides)
    return build_refund_completed(**fields)


def test_build_completed_event() -> None:
    event = _completed()
    assert event == {
        "event_id": completed_event_id("RF-1"),
        "refund_id": "RF-1",
        "trade_no": "2024050122001456781234567890",
        "amount": "12.50",
        "order_id": "O-1",
        "metadata": {"channel": "app"},
        "status": "succeeded",
        "code": "SUCCESS",
        "batch_no": "20240501000000000001",
        "completed_at": "2024-05-01T02:20:00.512000Z",
    }
    validate_refund_completed(event)
    json.dumps(event)


def test_build_rejected_event_without_batch() -> None:
    event = _completed(
        status="rejected",
        code="REFUND_TOTAL_EXCEEDS_TRADE_AMOUNT",
        batch_no=None,
        order_id=None,
        metadata=None,
        amount=Decimal("100000000"),
        completed_at=datetime(2024, 5, 1, tzinfo=UTC),
    )
    assert event["amount"] == "100000000.00"
    assert event["completed_at"] == "2024-05-01T00:00:00Z"
    assert event["batch_no"] is None and event["order_id"] is None


@pytest.mark.parametrize(
    "overrides",
    [
        {"amount": Decimal("1.234")},
        {"amount": Decimal("NaN")},
        {"completed_at": datetime(2024, 5, 1)},
    ],
)
def test_build_refuses_values_it_cannot_write(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        _completed(**overrides)


@pytest.mark.parametrize(
    "overrides",
    [
        {"status": "done"},
        {"status": "succeeded", "batch_no": None},
        {"status": "failed", "code": "SUCCESS"},
        {"code": ""},
        {"amount": Decimal("0")},
        {"amount": Decimal("-1.00")},
        {"batch_no": "2024-05-01"},
        {"trade_no": "123"},
    ],
)
def test_what_breaks_the_contract_is_built_as_given_and_refused_by_validation(
    overrides: dict[str, Any],
) -> None:
    # Not checked at run time (the ledger never holds such a refund); the tests of
    # every shape the ledger gives (tests/unit/test_completed_shapes.py) rely on this.
    event = _completed(**overrides)
    with pytest.raises(EventValidationError):
        validate_refund_completed(event)


def test_validate_completed_checks_the_derived_event_id() -> None:
    event = dict(_completed())
    event["event_id"] = str(uuid.uuid4())
    with pytest.raises(EventValidationError) as caught:
        validate_refund_completed(event)
    assert caught.value.reason == "schema_violation"
    assert "event_id" in caught.value.detail


# --------------------------------------------------------------------------
# refund.completed: the compiled validator (enum, const, not, allOf, if/then)
# --------------------------------------------------------------------------


def _mostly(good: list[object], bad: list[object]) -> st.SearchStrategy[object]:
    """Mostly good values, so that valid and invalid events are both common."""
    return st.sampled_from(good * 20 + bad)


_COMPLETED_VALUES = {
    "event_id": _mostly([completed_event_id("RF-1")], [str(uuid.uuid4()), "x", 5]),
    "refund_id": _mostly(["RF-1"], ["", "bad id", None]),
    "trade_no": _mostly(["2024050122001456781234567890"], ["12", None]),
    "amount": _mostly(["12.50", "0.01"], ["12.5", 12.5]),
    "order_id": _mostly(["O-1", None], ["", 7]),
    "metadata": _mostly([{"a": 1}, None], [[], "m"]),
    "status": _mostly(["succeeded", "failed", "rejected"], ["other", None, 1]),
    "code": _mostly(["SUCCESS", "TRADE_STATUS_ERROR"], ["", None, True]),
    "batch_no": _mostly(["20240501000000000001", None], ["2024", 1]),
    "completed_at": _mostly(["2024-05-01T02:20:00.512Z"], ["yesterday", None]),
    "extra": st.just("x"),
}


@settings(max_examples=500, deadline=None)
@given(
    st.fixed_dictionaries(
        {k: v for k, v in _COMPLETED_VALUES.items() if k != "extra"},
        optional={"extra": _COMPLETED_VALUES["extra"]},
    ),
    st.sets(st.sampled_from(sorted(_COMPLETED_VALUES)), max_size=1),
)
def test_completed_validator_agrees_with_jsonschema(doc: dict[str, Any], drop: set[str]) -> None:
    for name in drop:
        doc.pop(name, None)
    compiled = validation.compiled(REFUND_COMPLETED_SCHEMA)
    assert compiled.is_valid(doc) == validation.explainer(REFUND_COMPLETED_SCHEMA).is_valid(doc)


def test_completed_validator_refuses_a_success_code_on_a_failure() -> None:
    fast = validation.compiled(REFUND_COMPLETED_SCHEMA).is_valid
    event = dict(_completed())
    assert fast(event)
    assert not fast(dict(event, status="failed"))
    assert fast(dict(event, status="failed", code="TRADE_STATUS_ERROR"))
    assert not fast(dict(event, status="succeeded", code="TRADE_STATUS_ERROR"))
    assert not fast(dict(event, status="done"))
