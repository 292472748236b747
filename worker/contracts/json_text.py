"""Compact JSON text of plain values, the one serializer of the hot paths.

`compact` writes what ``json.dumps(value, ensure_ascii=False, separators=(",", ":"))``
writes, as far as any JSON reader can tell (same keys in the same order, same values,
non-ASCII text kept), with `orjson`, about three times faster: the ledger's set-based
statements send every micro-batch and every 1000-item batch as one JSON parameter,
each `refund.completed` body is serialized once, and every log line is rendered
(`bench/micro_json.py` measures the difference). The texts are not byte-for-byte the
same: `orjson` writes some floats in another spelling (``1e16`` for ``1e+16``).

A value `orjson` refuses (an integer beyond 64 bits, which refund metadata may hold; a
non-string key) is written by the standard library instead, so `compact` accepts
exactly what `json.dumps` does. `default` is called for other objects, as by
`json.dumps`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson

__all__ = ["compact"]


def compact(value: Any, default: Callable[[Any], Any] | None = None) -> str:
    """`value` as compact JSON text (UTF-8 characters kept, no spaces)."""
    try:
        return orjson.dumps(value, default=default).decode()
    except (TypeError, orjson.JSONEncodeError):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=default)
