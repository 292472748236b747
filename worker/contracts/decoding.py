"""Strict decoding of a message body into a JSON object (README "Events").

Stricter than `json.loads`, for rules a schema cannot state:

* a message is at most `MAX_EVENT_BYTES` of UTF-8 (an optional BOM is
  ignored), else `too_large` or `invalid_encoding`;
* no duplicate keys, no NaN/Infinity and no number too large for a float,
  else `invalid_json`;
* strings and keys contain neither NUL nor unpaired surrogates (PostgreSQL
  stores neither), else `invalid_encoding`;
* the document is an object, else `schema_violation`.

`decode_event` raises nothing but `EventValidationError`.
"""

from __future__ import annotations

import json
import math
from typing import Any, Final

from worker.contracts.reasons import (
    REASON_INVALID_ENCODING,
    REASON_INVALID_JSON,
    REASON_SCHEMA_VIOLATION,
    REASON_TOO_LARGE,
    bounded,
)
from worker.domain.errors import EventValidationError

__all__ = ["MAX_EVENT_BYTES", "decode_event"]

MAX_EVENT_BYTES: Final = 1024 * 1024


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


def decode_event(body: bytes) -> dict[str, Any]:
    """The JSON object in `body`, or `EventValidationError` (see the module docstring)."""
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
            REASON_INVALID_JSON, bounded(f"duplicate key {str(exc)[:60]!r}")
        ) from None
    except (ValueError, RecursionError) as exc:
        raise EventValidationError(REASON_INVALID_JSON, bounded(str(exc))) from None
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
                        REASON_INVALID_ENCODING, bounded(f"{path or '(event)'}: a key {problem}")
                    )
                stack.append((where, item))
        elif isinstance(value, list):
            stack.extend((f"{path}.{i}", item) for i, item in enumerate(value))
