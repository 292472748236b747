"""Validating a document against a schema file of `schemas/` (README "Events").

`schema_problem` returns None for a valid document, else a one-line detail
naming the field and the rule. Beyond the plain validators:

* `pattern` follows ECMA-262, the dialect JSON Schema names: `$` matches only
  at the very end (Python's `$` also matches before a final newline, which
  would let ``"2088...\\n"`` through as a trade number);
* `format` is asserted for `date-time` (RFC 3339, `parse_rfc3339`, so that
  whatever passes the schema also parses) and `uuid`.

Each schema file is compiled once by `jsonschema_rs` (draft 2020-12, ECMA-262
regular expressions), which decides whether a document is valid. A refused
document is explained by `jsonschema`, whose messages are the dead-letter
details (``amount: '1.234' does not match ...``); it applies the same two
rules. Should the two ever disagree, the document is still refused, with
`jsonschema_rs`'s own message. A value `jsonschema_rs` cannot take (a `str`
subclass, an unpaired surrogate) is judged by `jsonschema` alone.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator
from typing import Any, Final

import jsonschema  # type: ignore[import-untyped, unused-ignore]
import jsonschema_rs

from worker.contracts.reasons import bounded
from worker.contracts.rfc3339 import parse_rfc3339
from worker.contracts.schema_files import schema

__all__ = ["compiled", "explainer", "schema_problem"]


def _is_date_time(instance: object) -> bool:
    if not isinstance(instance, str):
        return True
    try:
        parse_rfc3339(instance)
    except ValueError:
        return False
    return True


_UUID: Final = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)


def _is_uuid(instance: object) -> bool:
    return not isinstance(instance, str) or _UUID.fullmatch(instance) is not None


# The formats asserted, the same for both validators. jsonschema's own
# date-time check needs an optional package and silently passes without it;
# jsonschema_rs's accepts year 0000, which a datetime cannot hold.
_FORMATS: Final[dict[str, Callable[[object], bool]]] = {
    "date-time": _is_date_time,
    "uuid": _is_uuid,
}


@functools.cache
def compiled(name: str) -> jsonschema_rs.Validator:
    """The `jsonschema_rs` validator of schema file `name`, compiled once."""
    return jsonschema_rs.validator_for(
        schema(name), formats=dict(_FORMATS), validate_formats=True, offline=True
    )


# ---- the explainer: jsonschema, for the wording of the detail ------------


def _format_checker() -> Any:
    checker = jsonschema.FormatChecker(formats=())
    for name, check in _FORMATS.items():
        checker.checks(name)(check)
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
def explainer(name: str) -> Any:
    """The `jsonschema` validator of schema file `name` (ECMA-262 `pattern`, the formats above)."""
    document = schema(name)
    base = jsonschema.Draft202012Validator
    base.check_schema(document)
    cls = jsonschema.validators.extend(  # type: ignore[no-untyped-call, unused-ignore]
        base, validators={"pattern": _pattern_keyword}
    )
    return cls(document, format_checker=_format_checker())


def _path_text(path: Any) -> str:
    parts = [str(p) for p in path]
    return ".".join(parts) if parts else "(event)"


def schema_problem(name: str, document: object) -> str | None:
    """None when `document` is valid for schema `name`, else a detail naming the field and rule."""
    validator = compiled(name)
    try:
        if validator.is_valid(document):
            return None
        refused = True
    except ValueError:
        refused = False
    error = jsonschema.exceptions.best_match(explainer(name).iter_errors(document))
    if error is not None:
        return bounded(f"{_path_text(error.absolute_path)}: {error.message}")
    if not refused:
        return None
    first = next(iter(validator.iter_errors(document)))
    return bounded(f"{_path_text(first.instance_path)}: {first.message}")
