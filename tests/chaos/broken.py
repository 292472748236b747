"""The broken input of a chaos load: requests the worker must dead-letter, forged notifications.

`BREAKERS` breaks a valid request one way each and names the dead-letter reason
the worker must give it; `add_bad_input` adds such messages (and oversized ones)
to a `tests.chaos.load.Load`. `notify_probes` makes forged, broken and garbage
`batch_refund_notify` bodies the notify receiver must refuse. Everything is drawn
from the scenario's `random.Random`. Moved out of `tests.chaos.load`, which keeps
the good traffic, the conflicting re-sends and the requests the worker rejects
by its rules.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from tests.chaos.load import (
    AMOUNT_OUT_OF_RANGE,
    INVALID_ENCODING,
    INVALID_JSON,
    SCHEMA_VIOLATION,
    TOO_LARGE,
    Load,
    Message,
    amount,
    json_body,
    request,
    trade_no,
)

__all__ = ["BREAKERS", "Breaker", "NotifyProbe", "add_bad_input", "notify_probes"]


# --- bad input ----------------------------------------------------------------------------

Breaker = Callable[[random.Random, dict[str, Any]], tuple[bytes, str]]


def _field(name: str, values: Iterable[object], reason: str) -> Breaker:
    choices = list(values)

    def breaker(rng: random.Random, doc: dict[str, Any]) -> tuple[bytes, str]:
        doc[name] = rng.choice(choices)
        return json_body(doc), reason

    return breaker


def _missing(rng: random.Random, doc: dict[str, Any]) -> tuple[bytes, str]:
    del doc[rng.choice(("event_id", "refund_id", "trade_no", "amount"))]
    return json_body(doc), SCHEMA_VIOLATION


def _unknown_field(rng: random.Random, doc: dict[str, Any]) -> tuple[bytes, str]:
    doc[rng.choice(("ammount", "tradeNo", "refund", "x"))] = "1.00"
    return json_body(doc), SCHEMA_VIOLATION


def _not_object(rng: random.Random, doc: dict[str, Any]) -> tuple[bytes, str]:
    value = rng.choice([[doc], "refund", 42, None, True, []])
    return json_body(value), SCHEMA_VIOLATION


def _truncated(rng: random.Random, doc: dict[str, Any]) -> tuple[bytes, str]:
    text = json.dumps(doc, ensure_ascii=True)  # ASCII: a cut never splits a character
    return text[: rng.randrange(1, len(text) - 1)].encode(), INVALID_JSON


def _garbage_text(rng: random.Random, doc: dict[str, Any]) -> tuple[bytes, str]:
    words = ["refund", "please", "{", "amount:", "=", "'1.00'", "<xml>", "NaN", "}"]
    return (" ".join(rng.choice(words) for _ in range(rng.randint(2, 8))) + " ~").encode(), (
        INVALID_JSON
    )


def _duplicate_key(rng: random.Random, doc: dict[str, Any]) -> tuple[bytes, str]:
    text = json_body(doc).decode()
    return (text[:-1] + f', "amount": "{amount(rng)}"}}').encode(), INVALID_JSON


def _nan_amount(rng: random.Random, doc: dict[str, Any]) -> tuple[bytes, str]:
    text = json_body(dict(doc, amount="@@")).decode()
    return text.replace('"@@"', rng.choice(("NaN", "Infinity", "-Infinity"))).encode(), (
        INVALID_JSON
    )


def _bad_utf8(rng: random.Random, doc: dict[str, Any]) -> tuple[bytes, str]:
    body = json_body(dict(doc, reason="@@"))
    return body.replace(b"@@", rng.choice((b"\xff", b"\xc3\x28", b"\xed\xa0\x80"))), (
        INVALID_ENCODING
    )


def _escaped_bad_string(rng: random.Random, doc: dict[str, Any]) -> tuple[bytes, str]:
    text = json.dumps(dict(doc, reason="@@"), ensure_ascii=True)
    return text.replace("@@", rng.choice(("a\\u0000b", "\\ud800", "x\\udfff"))).encode(), (
        INVALID_ENCODING
    )


def _deep_metadata(rng: random.Random, doc: dict[str, Any]) -> tuple[bytes, str]:
    nested: dict[str, Any] = {}
    for _ in range(rng.randint(40, 60)):
        nested = {"n": nested}
    doc["metadata"] = nested
    return json_body(doc), SCHEMA_VIOLATION


BREAKERS: dict[str, Breaker] = {
    "missing_field": _missing,
    "unknown_field": _unknown_field,
    "not_object": _not_object,
    "truncated": _truncated,
    "garbage_text": _garbage_text,
    "duplicate_key": _duplicate_key,
    "nan_amount": _nan_amount,
    "bad_utf8": _bad_utf8,
    "escaped_bad_string": _escaped_bad_string,
    "deep_metadata": _deep_metadata,
    "amount_pattern": _field(
        "amount",
        ["1.001", "-1.00", "1,00", "abc", "01.00", " 1.00", "1e3", "", "1.", ".5", "１.00"],
        SCHEMA_VIOLATION,
    ),
    "amount_type": _field("amount", [1.5, 100, None, ["1.00"], {"v": "1.00"}], SCHEMA_VIOLATION),
    "amount_zero": _field("amount", ["0", "0.00", "0.0"], AMOUNT_OUT_OF_RANGE),
    "amount_too_big": _field(
        "amount", ["100000000.01", "999999999.99", "500000000"], AMOUNT_OUT_OF_RANGE
    ),
    "trade_no": _field(
        "trade_no",
        ["123456789012345", "1" * 65, "2026abcd00000000001", "", 2026112233445566],
        SCHEMA_VIOLATION,
    ),
    "refund_id": _field(
        "refund_id",
        ["", "a" * 65, "has space", "slash/id", "hash#id", "emoji-🙂", 7],
        SCHEMA_VIOLATION,
    ),
    "trade_amount": _field("trade_amount", ["lots", "1.234", 50], SCHEMA_VIOLATION),
    "trade_amount_zero": _field("trade_amount", ["0", "0.00"], AMOUNT_OUT_OF_RANGE),
    "requested_at": _field(
        "requested_at", ["yesterday", "2026-13-01T00:00:00Z", "2026-03-01 12:00"], SCHEMA_VIOLATION
    ),
    "order_id": _field("order_id", ["", "o" * 129, 12], SCHEMA_VIOLATION),
    "metadata_type": _field("metadata", ["note", [1, 2], 3], SCHEMA_VIOLATION),
    "reason_type": _field("reason", [12, ["why"], {"text": "why"}], SCHEMA_VIOLATION),
}


def add_bad_input(load: Load, rng: random.Random, *, count: int, tag: int, large: int = 2) -> None:
    """`count` broken requests (every breaker in turn, then at random) and `large` oversized."""
    names = sorted(BREAKERS)
    for i in range(count):
        name = names[i] if i < len(names) else rng.choice(names)
        base = request(rng, f"bad-{i}", trade_no(tag, 9_000_000 + i), amount(rng))
        body, reason = BREAKERS[name](rng, base)
        load.add(Message(body, f"bad-{name}-{i}", expect_dead=reason))
    for i in range(large):
        base = request(rng, f"huge-{i}", trade_no(tag, 9_500_000 + i), amount(rng))
        base["reason"] = "r" * (1024 * 1024 + 10)
        load.add(Message(json_body(base), f"bad-too_large-{i}", expect_dead=TOO_LARGE))


# --- malformed notifications ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NotifyProbe:
    """A body POSTed to the notify receiver that must be refused (4xx, never `success`)."""

    body: bytes
    content_type: str
    notify_id: str | None
    kind: str


def _form(fields: dict[str, str]) -> bytes:
    from urllib.parse import urlencode

    return urlencode(fields).encode()


def notify_probes(rng: random.Random, *, count: int, batch_nos: list[str]) -> list[NotifyProbe]:
    """Forged, broken and garbage `batch_refund_notify` bodies.

    Forms that look genuine name real batch_nos and claim every item SUCCESS, so a
    forgery that got through would show as a refund succeeding that the gateway
    never executed.
    """
    probes: list[NotifyProbe] = []
    form_type = "application/x-www-form-urlencoded; charset=utf-8"
    for i in range(count):
        notify_id = f"chaosforged{i:06d}{rng.getrandbits(32):08x}"
        batch_no = rng.choice(batch_nos) if batch_nos else "20260301000001"
        genuine_looking = {
            "notify_time": "2026-03-01 12:00:00",
            "notify_type": "batch_refund_notify",
            "notify_id": notify_id,
            "sign_type": "MD5",
            "sign": f"{rng.getrandbits(128):032x}",
            "batch_no": batch_no,
            "success_num": "1",
            "result_details": f"{trade_no(1, rng.randrange(10**6))}^1.00^SUCCESS",
        }
        kind = rng.choice(
            (
                "forged_sign",
                "missing_field",
                "wrong_type",
                "bad_notify_id",
                "garbage",
                "bad_percent",
                "bad_charset",
                "empty",
                "bad_utf8",
                "rsa_claim",
            )
        )
        body, content_type = _form(genuine_looking), form_type
        if kind == "missing_field":
            del genuine_looking[rng.choice(("notify_id", "sign", "batch_no", "result_details"))]
            body = _form(genuine_looking)
        elif kind == "wrong_type":
            genuine_looking["notify_type"] = "trade_status_sync"
            body = _form(genuine_looking)
        elif kind == "bad_notify_id":
            genuine_looking["notify_id"] = "../../" + "x" * rng.randint(1, 300)
            body = _form(genuine_looking)
        elif kind == "garbage":
            body = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 400)))
        elif kind == "bad_percent":
            body = b"notify_id=%zz&sign=%&batch_no=%%%" + b"&" * rng.randint(0, 5)
        elif kind == "bad_charset":
            content_type = "application/x-www-form-urlencoded; charset=klingon"
        elif kind == "empty":
            body = b""
        elif kind == "bad_utf8":
            body = body.replace(b"batch_refund_notify", b"batch_refund_notify%FF%FE")
        elif kind == "rsa_claim":
            genuine_looking["sign_type"] = "RSA"
            body = _form(genuine_looking)
        probes.append(NotifyProbe(body, content_type, notify_id, kind))
    return probes
