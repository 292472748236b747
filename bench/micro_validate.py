"""Schema validation of `refund.requested`: the old hand-written fast path against `jsonschema_rs`.

    python -m bench.micro_validate            # 10,000 messages, best of 5 runs
    python -m bench.micro_validate --count 2000

Validates the same typical messages (already decoded, as `parse_refund_requested`
hands them over) with the fast path that `worker/contracts/` compiled from the
schema file until it moved to `jsonschema_rs`, kept here only to be measured, and
with `worker.contracts.validation.schema_problem`; prints both, the ratio and, for
scale, whole `parse_refund_requested` calls and plain `jsonschema`. The same for
`refund.completed`, which the tests validate (`build_refund_completed` no longer does
at run time). Both paths must
give the same verdict on every message, or the script stops.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Final

from worker.contracts import validation
from worker.contracts.completed import build_refund_completed
from worker.contracts.requested import parse_refund_requested
from worker.contracts.rfc3339 import parse_rfc3339
from worker.contracts.schema_files import REFUND_COMPLETED_SCHEMA, REFUND_REQUESTED_SCHEMA, schema

# ---- the old path: the hand-written fast path, as it was --------------------


def _ecma_regex(pattern: str) -> re.Pattern[str]:
    if pattern.endswith("$"):
        backslashes = len(pattern[:-1]) - len(pattern[:-1].rstrip("\\"))
        if backslashes % 2 == 0:
            pattern = pattern[:-1] + r"\Z"
    return re.compile(pattern)


def _check_date_time(instance: object) -> bool:
    if isinstance(instance, str):
        parse_rfc3339(instance)
    return True


_UUID: Final = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)


def _check_uuid(instance: object) -> bool:
    return not isinstance(instance, str) or _UUID.fullmatch(instance) is not None


_FORMATS: Final[dict[str, Callable[[object], bool]]] = {
    "date-time": _check_date_time,
    "uuid": _check_uuid,
}

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


def old_problem(fast: _Check, name: str, document: object) -> str | None:
    """The old `_schema_errors`: the fast path, then jsonschema for what it refuses."""
    if fast(document):
        return None
    return validation.schema_problem(name, document)


# ---- the messages ------------------------------------------------------------


def requested_documents(count: int, rng: random.Random) -> list[dict[str, Any]]:
    """Typical `refund.requested` events: every one valid, half with every optional field."""
    start = datetime(2024, 5, 1, tzinfo=UTC)
    documents = []
    for i in range(count):
        cents = rng.randrange(1, 5_000_000)
        doc: dict[str, Any] = {
            "event_id": f"evt-{i:08d}-{rng.getrandbits(32):08x}",
            "refund_id": f"RF-{i:010d}",
            "trade_no": f"2024{rng.randrange(10**23, 10**24)}",
            "amount": f"{cents // 100}.{cents % 100:02d}",
        }
        if i % 2 == 0:
            doc.update(
                reason="商品破损，申请退款" if i % 4 == 0 else "customer cancelled",
                trade_amount=f"{cents // 100 + 10}.00",
                order_id=f"O-{i:012d}",
                metadata={"channel": "app", "sku": [f"SKU-{i % 97}"], "retry": i % 3},
                requested_at=(start + timedelta(seconds=i)).isoformat().replace("+00:00", "Z"),
            )
        documents.append(doc)
    return documents


def completed_events(count: int, rng: random.Random) -> list[dict[str, object]]:
    statuses = [("succeeded", "SUCCESS"), ("failed", "TRADE_STATUS_ERROR"), ("rejected", "X")]
    events = []
    for i in range(count):
        status, code = statuses[i % 3]
        events.append(
            build_refund_completed(
                refund_id=f"RF-{i:010d}",
                trade_no=f"2024{rng.randrange(10**23, 10**24)}",
                amount=Decimal(rng.randrange(1, 5_000_000)) / 100,
                order_id=f"O-{i:012d}" if i % 2 else None,
                metadata={"channel": "app"} if i % 2 else None,
                status=status,
                code=code,
                batch_no=None if status == "rejected" else f"20240501{i:012d}",
                completed_at=datetime(2024, 5, 1, 2, 20, tzinfo=UTC) + timedelta(seconds=i),
            )
        )
    return events


# ---- timing --------------------------------------------------------------------


def best_of(runs: int, work: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - start)
    return best


def per_message(seconds: float, count: int) -> str:
    return f"{seconds / count * 1e6:7.2f} µs/message ({count / seconds:>9,.0f}/s)"


def compare(name: str, documents: list[Any], runs: int) -> None:
    fast = _compile_fast(schema(name))
    assert fast is not None, "the old fast path gave up on the schema"
    for document in documents:
        new = validation.schema_problem(name, document)
        assert old_problem(fast, name, document) == new, (document, new)
    count = len(documents)
    old_time = best_of(runs, lambda: [old_problem(fast, name, d) for d in documents])
    new_time = best_of(runs, lambda: [validation.schema_problem(name, d) for d in documents])
    plain = validation.explainer(name).is_valid
    plain_time = best_of(1, lambda: [plain(d) for d in documents])
    print(f"{name}, {count:,} valid messages, best of {runs}:")
    print(f"  old: hand-written fast path  {per_message(old_time, count)}")
    print(f"  new: jsonschema_rs           {per_message(new_time, count)}")
    print(f"  ratio old/new                {old_time / new_time:7.2f}x")
    print(f"  for scale: jsonschema alone  {per_message(plain_time, count)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    rng = random.Random(20240501)
    requested = requested_documents(args.count, rng)
    compare(REFUND_REQUESTED_SCHEMA, requested, args.runs)
    bodies = [json.dumps(d, ensure_ascii=False).encode() for d in requested]
    parse_time = best_of(args.runs, lambda: [parse_refund_requested(b) for b in bodies])
    print(f"  whole parse_refund_requested {per_message(parse_time, len(bodies))}")
    print()
    compare(REFUND_COMPLETED_SCHEMA, completed_events(args.count, rng), args.runs)


if __name__ == "__main__":
    main()
