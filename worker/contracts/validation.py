"""Validating a document against a schema file of `schemas/` (README "Events").

`schema_problem` returns None for a valid document, else a one-line detail
naming the field and the rule. Two rules are applied beyond the plain
validators:

* `pattern` follows ECMA-262, the dialect JSON Schema names: `$` matches only
  at the very end (Python's `$` also matches before a final newline, which
  would let ``"2088...\\n"`` through as a trade number);
* `format` is asserted for `date-time` (RFC 3339, `parse_rfc3339`) and `uuid`.

Valid documents take a fast path compiled once from the schema file itself
(type, required, properties, additionalProperties, length, pattern and
format only); anything it refuses is re-checked by `jsonschema`, which words
the error. The fast path never accepts what `jsonschema` refuses: it only
compiles keywords it implements and gives up on the rest.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator
from typing import Any, Final

import jsonschema  # type: ignore[import-untyped, unused-ignore]

from worker.contracts.reasons import bounded
from worker.contracts.rfc3339 import parse_rfc3339
from worker.contracts.schema_files import schema

__all__ = ["schema_problem"]


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
    document = schema(name)
    base = jsonschema.Draft202012Validator
    base.check_schema(document)
    cls = jsonschema.validators.extend(  # type: ignore[no-untyped-call, unused-ignore]
        base, validators={"pattern": _pattern_keyword}
    )
    return cls(document, format_checker=_format_checker())


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
    return _compile_fast(schema(name))


def _path_text(path: Any) -> str:
    parts = [str(p) for p in path]
    return ".".join(parts) if parts else "(event)"


def schema_problem(name: str, document: object) -> str | None:
    """None when `document` is valid for schema `name`, else a detail naming the field and rule."""
    fast = _fast(name)
    if fast is not None and fast(document):
        return None
    error = jsonschema.exceptions.best_match(_validator(name).iter_errors(document))
    if error is None:
        return None
    return bounded(f"{_path_text(error.absolute_path)}: {error.message}")
