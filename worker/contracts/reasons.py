"""The dead-letter reasons of a refused event, and the bound on their detail.

An `EventValidationError` carries one `REASON_*` code (the dead-letter header,
README "Events") and a `detail` naming the field and the rule; the detail
travels as an AMQP header and in log lines, so it is one line of at most
`MAX_DETAIL` characters.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "MAX_DETAIL",
    "REASON_AMOUNT_OUT_OF_RANGE",
    "REASON_INVALID_ENCODING",
    "REASON_INVALID_JSON",
    "REASON_SCHEMA_VIOLATION",
    "REASON_TOO_LARGE",
    "bounded",
]

REASON_INVALID_ENCODING: Final = "invalid_encoding"
REASON_INVALID_JSON: Final = "invalid_json"
REASON_SCHEMA_VIOLATION: Final = "schema_violation"
REASON_AMOUNT_OUT_OF_RANGE: Final = "amount_out_of_range"
REASON_TOO_LARGE: Final = "too_large"

MAX_DETAIL: Final = 300


def bounded(text: str) -> str:
    """`text` on one line (whitespace runs become one space), cut to `MAX_DETAIL` characters."""
    text = " ".join(text.split())
    return text if len(text) <= MAX_DETAIL else text[: MAX_DETAIL - 3] + "..."
