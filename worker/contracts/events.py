"""The bus contracts: `refund.requested.v1` in, `refund.completed.v1` out (README, "Events").

The JSON Schema files in `schemas/` are the contract; this module applies
them and adds the rules a schema cannot state:

* a message is at most 1 MiB of UTF-8 JSON (an optional BOM is ignored), with
  no duplicate keys, no NaN/Infinity and no number too large for a float;
* strings contain neither NUL nor unpaired surrogates (PostgreSQL stores
  neither), and `metadata` nests at most 32 levels;
* `amount` and `trade_amount` are greater than 0 and at most 100000000.00;
* `pattern` follows ECMA-262, the dialect JSON Schema names: `$` matches only
  at the very end (Python's `$` also matches before a final newline, which
  would let ``"2088...\\n"`` through as a trade number).

`parse_refund_requested` raises nothing but `EventValidationError`, whose
`reason` is one of the `REASON_*` codes below (the dead-letter header) and
whose `detail` names the field and the rule.

Valid messages take a fast path compiled once from the schema file itself
(type, required, properties, additionalProperties, length, pattern and
format only); anything it refuses is re-checked by `jsonschema`, which words
the error. The fast path never accepts what `jsonschema` refuses: it only
compiles keywords it implements and gives up on the rest.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.resources
import json
import math
import re
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Final

import jsonschema  # type: ignore[import-untyped, unused-ignore]

from worker.domain.errors import EventValidationError

__all__ = [
    "COMPLETED_EVENT_NAMESPACE",
    "MAX_AMOUNT",
    "MAX_EVENT_BYTES",
    "MAX_METADATA_DEPTH",
    "REASON_AMOUNT_OUT_OF_RANGE",
    "REASON_INVALID_ENCODING",
    "REASON_INVALID_JSON",
    "REASON_SCHEMA_VIOLATION",
    "REASON_TOO_LARGE",
    "REFUND_COMPLETED_SCHEMA",
    "REFUND_REQUESTED_SCHEMA",
    "RefundRequest",
    "build_refund_completed",
    "completed_event_id",
    "load_schema",
    "parse_refund_requested",
    "parse_rfc3339",
    "validate_refund_completed",
]

REFUND_REQUESTED_SCHEMA: Final = "refund.requested.v1.json"
REFUND_COMPLETED_SCHEMA: Final = "refund.completed.v1.json"

REASON_INVALID_ENCODING: Final = "invalid_encoding"
REASON_INVALID_JSON: Final = "invalid_json"
REASON_SCHEMA_VIOLATION: Final = "schema_violation"
REASON_AMOUNT_OUT_OF_RANGE: Final = "amount_out_of_range"
REASON_TOO_LARGE: Final = "too_large"

MAX_EVENT_BYTES: Final = 1024 * 1024
MAX_METADATA_DEPTH: Final = 32
MAX_AMOUNT: Final = Decimal("100000000.00")
_CENT: Final = Decimal("0.01")
# Longest `detail`: it travels as an AMQP header and in log lines.
_MAX_DETAIL: Final = 300

# `refund.completed` event ids are uuid5(COMPLETED_EVENT_NAMESPACE, refund_id).
# The namespace is itself uuid5(NAMESPACE_URL, "urn:alipay-refund-worker:refund.completed"),
# so any consumer can recompute it. Changing it would give every refund a new
# event identity: never change it.
COMPLETED_EVENT_NAMESPACE: Final = uuid.UUID("b3bdf6be-c59a-54ea-aa7c-d2c92e005903")


# --------------------------------------------------------------------------
# RFC 3339
# --------------------------------------------------------------------------

_RFC3339: Final = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]+)?"
    r"(?:([Zz])|([+-])([0-9]{2}):([0-9]{2}))"
)


def parse_rfc3339(text: str) -> datetime:
    """An RFC 3339 `date-time` (section 5.6) as an aware datetime; ValueError otherwise.

    The offset is required (`Z` or `+hh:mm`); `T` and `Z` may be lowercase;
    fractions beyond microseconds are truncated. A leap second (`:60`, only at
    23:59 UTC) becomes 23:59:59.999999 because datetime cannot hold it.
    """
    match = _RFC3339.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"{str(text)[:60]!r} is not an RFC 3339 date-time")
    year, month, day, hour, minute, second = (int(match[i]) for i in range(1, 7))
    fraction = match[7]
    micro = int((fraction[1:] + "000000")[:6]) if fraction else 0
    offset_minutes = 0
    if not match[8]:
        off_h, off_m = int(match[10]), int(match[11])
        if off_h > 23 or off_m > 59:
            raise ValueError(f"{text!r} has an invalid time-zone offset")
        offset_minutes = (off_h * 60 + off_m) * (-1 if match[9] == "-" else 1)
    if hour > 23 or minute > 59 or second > 60:
        raise ValueError(f"{text!r} has an invalid time of day")
    if second == 60:
        if (hour * 60 + minute - offset_minutes) % 1440 != 23 * 60 + 59:
            raise ValueError(f"{text!r} has a leap second outside 23:59 UTC")
        second, micro = 59, 999999
    zone = timezone(timedelta(minutes=offset_minutes))
    return datetime(year, month, day, hour, minute, second, micro, zone)


def _utc_text(moment: datetime) -> str:
    if not isinstance(moment, datetime) or moment.utcoffset() is None:
        raise ValueError("completed_at must be an aware datetime")
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


# --------------------------------------------------------------------------
# Schemas and validators
# --------------------------------------------------------------------------


def _schema_text(name: str) -> str:
    """A schema file: from the installed package, else from the repository's `schemas/`."""
    try:
        return (importlib.resources.files("worker.contracts") / "schemas" / name).read_text("utf-8")
    except (FileNotFoundError, NotADirectoryError):
        return (Path(__file__).resolve().parents[2] / "schemas" / name).read_text("utf-8")


@functools.cache
def _schema(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(_schema_text(name))
    return loaded


def load_schema(name: str) -> dict[str, Any]:
    """A copy of the parsed schema file `name` (e.g. `REFUND_REQUESTED_SCHEMA`)."""
    copied: dict[str, Any] = json.loads(json.dumps(_schema(name)))
    return copied


def _check_date_time(instance: object) -> bool:
    if isinstance(instance, str):
        parse_rfc3339(instance)
    return True


_UUID: Final = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)


def _check_uuid(instance: object) -> bool:
    return not isinstance(instance, str) or _UUID.fullmatch(instance) is not None


# Formats this module asserts. jsonschema's own date-time check needs an
# optional package and silently passes without it; these always run.
_FORMATS: Final[dict[str, Callable[[object], bool]]] = {
    "date-time": _check_date_time,
    "uuid": _check_uuid,
}


def _format_checker() -> Any:
    checker = jsonschema.FormatChecker(formats=())
    for name, check in _FORMATS.items():
        checker.checks(name, raises=ValueError)(check)
    return checker


@functools.lru_cache(maxsize=128)
def _ecma_regex(pattern: str) -> re.Pattern[str]:
    """`pattern` compiled so that a final unescaped `$` means end of input, as in ECMA-262."""
    if pattern.endswith("$"):
        backslashes = len(pattern[:-1]) - len(pattern[:-1].rstrip("\\"))
        if backslashes % 2 == 0:
            pattern = pattern[:-1] + r"\Z"
    return re.compile(pattern)


def _pattern_keyword(
    validator: Any, pattern: str, instance: object, schema: object
) -> Iterator[Any]:
    if validator.is_type(instance, "string") and not _ecma_regex(pattern).search(str(instance)):
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


@functools.cache
def _validator(name: str) -> Any:
    schema = _schema(name)
    base = jsonschema.Draft202012Validator
    base.check_schema(schema)
    cls = jsonschema.validators.extend(  # type: ignore[no-untyped-call, unused-ignore]
        base, validators={"pattern": _pattern_keyword}
    )
    return cls(schema, format_checker=_format_checker())


# ---- the fast path -------------------------------------------------------

_Check = Callable[[object], bool]
_ANNOTATIONS: Final = frozenset({"$schema", "$id", "title", "description", "$comment", "examples"})
_TYPE_TESTS: Final[dict[str, _Check]] = {
    "string": lambda v: isinstance(v, str),
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def _type_check(names: tuple[str, ...]) -> _Check:
    tests = tuple(_TYPE_TESTS[n] for n in names)

    def check(value: object) -> bool:
        return any(test(value) for test in tests)

    return check


def _length_check(low: int, high: int) -> _Check:
    def check(value: object) -> bool:
        return not isinstance(value, str) or low <= len(value) <= high

    return check


def _pattern_check(pattern: str) -> _Check:
    search = _ecma_regex(pattern).search

    def check(value: object) -> bool:
        return not isinstance(value, str) or search(value) is not None

    return check


def _required_check(names: tuple[str, ...]) -> _Check:
    def check(value: object) -> bool:
        return not isinstance(value, dict) or all(name in value for name in names)

    return check


def _properties_check(subs: tuple[tuple[str, _Check], ...]) -> _Check:
    def check(value: object) -> bool:
        if not isinstance(value, dict):
            return True
        return all(name not in value or sub(value[name]) for name, sub in subs)

    return check


def _closed_check(allowed: frozenset[str]) -> _Check:
    def check(value: object) -> bool:
        return not isinstance(value, dict) or value.keys() <= allowed

    return check


def _all_of(checks: tuple[_Check, ...]) -> _Check:
    def check(value: object) -> bool:
        return all(one(value) for one in checks)

    return check


def _keyword_check(keyword: str, arg: object, schema: dict[str, Any]) -> _Check | None:
    """The predicate of one keyword, or None if this module does not implement it."""
    if keyword == "type":
        names = (arg,) if isinstance(arg, str) else tuple(arg) if isinstance(arg, list) else ()
        if not names or not all(n in _TYPE_TESTS for n in names):
            return None
        return _type_check(tuple(str(n) for n in names))
    if keyword in ("minLength", "maxLength") and type(arg) is int:
        return _length_check(arg, 2**63) if keyword == "minLength" else _length_check(0, arg)
    if keyword == "pattern" and isinstance(arg, str):
        return _pattern_check(arg)
    if keyword == "format" and isinstance(arg, str) and arg in _FORMATS:
        return _lenient(_FORMATS[arg])
    if keyword == "required" and isinstance(arg, list):
        return _required_check(tuple(str(name) for name in arg))
    if keyword == "properties" and isinstance(arg, dict):
        subs: list[tuple[str, _Check]] = []
        for name, sub_schema in arg.items():
            sub = _compile_fast(sub_schema)
            if sub is None:
                return None
            subs.append((name, sub))
        return _properties_check(tuple(subs))
    if keyword == "additionalProperties" and arg is False and "patternProperties" not in schema:
        return _closed_check(frozenset(schema.get("properties", {})))
    if keyword == "enum" and isinstance(arg, list) and all(isinstance(v, str) for v in arg):
        return _one_of_strings(frozenset(arg))
    if keyword == "const" and isinstance(arg, str):
        return _one_of_strings(frozenset((arg,)))
    if keyword == "not":
        inner = _compile_fast(arg)
        return None if inner is None else _negated(inner)
    if keyword == "allOf" and isinstance(arg, list) and arg:
        parts = [_compile_fast(sub) for sub in arg]
        checks = tuple(part for part in parts if part is not None)
        return _all_of(checks) if len(checks) == len(parts) else None
    if keyword == "if":
        return _conditional(arg, schema.get("then", True), schema.get("else", True))
    if keyword in ("then", "else"):
        return _always  # applied by "if"; without an "if" they have no effect
    return None


def _always(_value: object) -> bool:
    return True


def _one_of_strings(allowed: frozenset[str]) -> _Check:
    # Only string members are compiled: JSON equality differs from Python's for
    # numbers and booleans (1 == True), so those stay with jsonschema.
    def check(value: object) -> bool:
        return isinstance(value, str) and value in allowed

    return check


def _negated(inner: _Check) -> _Check:
    def check(value: object) -> bool:
        return not inner(value)

    return check


def _conditional(condition: object, then: object, otherwise: object) -> _Check | None:
    """`if`/`then`/`else`: `then` must hold when `if` does, `else` when it does not."""
    compiled = [
        _always if sub is True else _compile_fast(sub) for sub in (condition, then, otherwise)
    ]
    test, when_true, when_false = compiled
    if test is None or when_true is None or when_false is None:
        return None

    def check(value: object) -> bool:
        return when_true(value) if test(value) else when_false(value)

    return check


def _compile_fast(schema: object) -> _Check | None:
    """A predicate equivalent to `schema`, or None when it uses a keyword not handled here."""
    if not isinstance(schema, dict):
        return None
    checks: list[_Check] = []
    for keyword, arg in schema.items():
        if keyword in _ANNOTATIONS:
            continue
        check = _keyword_check(keyword, arg, schema)
        if check is None:
            return None
        checks.append(check)
    return _all_of(tuple(checks))


def _lenient(check: Callable[[object], bool]) -> _Check:
    def run(value: object) -> bool:
        try:
            return check(value)
        except ValueError:
            return False

    return run


@functools.cache
def _fast(name: str) -> _Check | None:
    return _compile_fast(_schema(name))


def _path_text(path: Any) -> str:
    parts = [str(p) for p in path]
    return ".".join(parts) if parts else "(event)"


def _bounded(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_DETAIL else text[: _MAX_DETAIL - 3] + "..."


def _schema_errors(name: str, document: object) -> str | None:
    """None when `document` is valid for schema `name`, else a detail naming the field and rule."""
    fast = _fast(name)
    if fast is not None and fast(document):
        return None
    error = jsonschema.exceptions.best_match(_validator(name).iter_errors(document))
    if error is None:
        return None
    return _bounded(f"{_path_text(error.absolute_path)}: {error.message}")


# --------------------------------------------------------------------------
# refund.requested
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RefundRequest:
    """One valid `refund.requested` event.

    `amount` and `trade_amount` are exact Decimals with two decimals
    (``"12.5"`` becomes ``Decimal("12.50")``); an optional field sent as
    ``null`` is None, the same as absent.
    """

    event_id: str
    refund_id: str
    trade_no: str
    amount: Decimal
    reason: str | None = None
    trade_amount: Decimal | None = None
    order_id: str | None = None
    metadata: dict[str, Any] | None = None
    requested_at: datetime | None = None

    def content(self) -> dict[str, Any]:
        """What makes two requests "the same refund" (the duplicate rule of README, "Events").

        It is every field the refund is made of: `refund_id`, `trade_no`,
        `amount`, `reason`, `trade_amount`, `order_id`, `metadata`. `event_id`
        and `requested_at` describe one delivery, not the refund, so a re-send
        with a new event id or timestamp is still a duplicate; a different
        amount, reason or metadata is a conflict. Amounts are compared as
        money (``"12.5"`` equals ``"12.50"``), metadata by value (key order
        does not matter).
        """
        return {
            "refund_id": self.refund_id,
            "trade_no": self.trade_no,
            "amount": _money_text(self.amount),
            "reason": self.reason,
            "trade_amount": None if self.trade_amount is None else _money_text(self.trade_amount),
            "order_id": self.order_id,
            "metadata": self.metadata,
        }

    def content_hash(self) -> str:
        """SHA-256 (hex) of `content()` as canonical JSON (sorted keys, no spaces, UTF-8).

        Stored with the refund; the definition must stay stable, or stored
        refunds would conflict with their own re-deliveries.
        """
        canonical = json.dumps(
            self.content(),
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
            allow_nan=False,
        )
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class _DuplicateKey(ValueError):
    pass


def _object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return result


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]} is too large")
    return value


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


_DECODER: Final = json.JSONDecoder(
    object_pairs_hook=_object_without_duplicates,
    parse_float=_finite_float,
    parse_constant=_no_constant,
)


def _decode(body: bytes) -> dict[str, Any]:
    if len(body) > MAX_EVENT_BYTES:
        raise EventValidationError(
            REASON_TOO_LARGE, f"message is {len(body)} bytes, more than {MAX_EVENT_BYTES}"
        )
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EventValidationError(
            REASON_INVALID_ENCODING, f"body is not UTF-8 (bad byte at offset {exc.start})"
        ) from None
    if text.startswith("\ufeff"):
        text = text[1:]
    try:
        document = _DECODER.decode(text)
    except _DuplicateKey as exc:
        raise EventValidationError(
            REASON_INVALID_JSON, _bounded(f"duplicate key {str(exc)[:60]!r}")
        ) from None
    except (ValueError, RecursionError) as exc:
        raise EventValidationError(REASON_INVALID_JSON, _bounded(str(exc))) from None
    if not isinstance(document, dict):
        raise EventValidationError(
            REASON_SCHEMA_VIOLATION,
            f"(event): must be a JSON object, got {type(document).__name__}",
        )
    if "\\u" in text:
        _check_strings(document)
    return document


def _bad_string(text: str) -> str | None:
    if "\x00" in text:
        return "contains NUL"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "contains an unpaired surrogate"
    return None


def _check_strings(document: dict[str, Any]) -> None:
    """Refuse NUL and unpaired surrogates anywhere (they arrive only as \\u escapes)."""
    stack: list[tuple[str, Any]] = [("", document)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            problem = _bad_string(value)
            if problem:
                raise EventValidationError(
                    REASON_INVALID_ENCODING, f"{path or '(event)'}: {problem}"
                )
        elif isinstance(value, dict):
            for key, item in value.items():
                where = f"{path}.{key}" if path else str(key)
                problem = _bad_string(key)
                if problem:
                    raise EventValidationError(
                        REASON_INVALID_ENCODING, _bounded(f"{path or '(event)'}: a key {problem}")
                    )
                stack.append((where, item))
        elif isinstance(value, list):
            stack.extend((f"{path}.{i}", item) for i, item in enumerate(value))


def _depth(value: object) -> int:
    """Nesting depth of a JSON value (a scalar is 0, `{}` is 1), without recursion."""
    deepest = 0
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, level + 1)
        if deepest > MAX_METADATA_DEPTH:
            return deepest
        stack.extend((child, level + 1) for child in children)
    return deepest


def _amount(field: str, text: str) -> Decimal:
    value = Decimal(text)
    if value <= 0:
        raise EventValidationError(
            REASON_AMOUNT_OUT_OF_RANGE, f"{field}: must be greater than 0 (got {text!r})"
        )
    if value > MAX_AMOUNT:
        raise EventValidationError(
            REASON_AMOUNT_OUT_OF_RANGE, f"{field}: must be at most {MAX_AMOUNT} (got {text!r})"
        )
    return value.quantize(_CENT)


def parse_refund_requested(body: bytes) -> RefundRequest:
    """Validate one `refund.requested` message body and return it typed.

    Raises `EventValidationError` (and nothing else, whatever the bytes) with
    reason `too_large`, `invalid_encoding`, `invalid_json`,
    `schema_violation` or `amount_out_of_range`.
    """
    if not isinstance(body, bytes | bytearray | memoryview):
        raise EventValidationError(
            REASON_INVALID_ENCODING, f"body must be bytes, got {type(body).__name__}"
        )
    document = _decode(bytes(body))
    problem = _schema_errors(REFUND_REQUESTED_SCHEMA, document)
    if problem is not None:
        raise EventValidationError(REASON_SCHEMA_VIOLATION, problem)
    metadata = document.get("metadata")
    if metadata and _depth(metadata) > MAX_METADATA_DEPTH:
        raise EventValidationError(
            REASON_SCHEMA_VIOLATION, f"metadata: nests deeper than {MAX_METADATA_DEPTH} levels"
        )
    trade_amount = document.get("trade_amount")
    requested_at = document.get("requested_at")
    return RefundRequest(
        event_id=document["event_id"],
        refund_id=document["refund_id"],
        trade_no=document["trade_no"],
        amount=_amount("amount", document["amount"]),
        reason=document.get("reason"),
        trade_amount=None if trade_amount is None else _amount("trade_amount", trade_amount),
        order_id=document.get("order_id"),
        metadata=metadata,
        requested_at=None if requested_at is None else parse_rfc3339(requested_at),
    )


# --------------------------------------------------------------------------
# refund.completed
# --------------------------------------------------------------------------


def completed_event_id(refund_id: str) -> str:
    """The `event_id` of the `refund.completed` event of `refund_id`: the same on every call."""
    return str(uuid.uuid5(COMPLETED_EVENT_NAMESPACE, refund_id))


def _money_text(amount: Decimal) -> str:
    """`amount` with exactly two decimals; ValueError if that would change its value."""
    if not isinstance(amount, Decimal):
        raise ValueError(f"amount must be a Decimal, got {type(amount).__name__}")
    try:
        cents = amount.quantize(_CENT)
    except InvalidOperation:
        raise ValueError(f"amount {amount} is not a finite amount of money") from None
    if cents != amount:
        raise ValueError(f"amount {amount} has more than two decimals")
    return f"{cents:f}"


def build_refund_completed(
    *,
    refund_id: str,
    trade_no: str,
    amount: Decimal,
    order_id: str | None,
    metadata: Mapping[str, Any] | None,
    status: str,
    code: str,
    batch_no: str | None,
    completed_at: datetime,
) -> dict[str, object]:
    """A schema-valid `refund.completed` event for one refund's final state.

    `amount` is written with two decimals, `completed_at` in UTC (`...Z`).
    Raises ValueError for an amount with more than two decimals or a naive
    `completed_at`, and `EventValidationError` if the event breaks the schema.
    """
    event: dict[str, object] = {
        "event_id": completed_event_id(refund_id),
        "refund_id": refund_id,
        "trade_no": trade_no,
        "amount": _money_text(amount),
        "order_id": order_id,
        "metadata": None if metadata is None else dict(metadata),
        "status": status,
        "code": code,
        "batch_no": batch_no,
        "completed_at": _utc_text(completed_at),
    }
    validate_refund_completed(event)
    return event


def validate_refund_completed(event: Mapping[str, object]) -> None:
    """Raise `EventValidationError` unless `event` is a valid `refund.completed.v1`.

    Beyond the schema: `amount` is greater than 0 and at most 100000000.00 and
    `event_id` is the one `completed_event_id` derives from `refund_id`.
    """
    document = dict(event)
    problem = _schema_errors(REFUND_COMPLETED_SCHEMA, document)
    if problem is not None:
        raise EventValidationError(REASON_SCHEMA_VIOLATION, problem)
    _amount("amount", str(document["amount"]))
    expected = completed_event_id(str(document["refund_id"]))
    if document["event_id"] != expected:
        raise EventValidationError(
            REASON_SCHEMA_VIOLATION,
            f"event_id: must be {expected}, the id derived from refund_id",
        )
