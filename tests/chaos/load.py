"""The traffic a chaos scenario sends: good refund requests, their re-sends, and bad input.

Everything is drawn from one `random.Random(seed)`, so a scenario sends the same
messages every time it runs. Each message carries its own AMQP message_id; bad
messages carry the dead-letter reason the worker must give them (README, "Events", and
`schemas/refund.requested.v1.json`), decided here from how the message was broken,
never by asking the worker's own parser.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

# Dead-letter reasons (the x-refund-dead-letter-reason header), as the contract names them.
INVALID_JSON = "invalid_json"
INVALID_ENCODING = "invalid_encoding"
SCHEMA_VIOLATION = "schema_violation"
AMOUNT_OUT_OF_RANGE = "amount_out_of_range"
TOO_LARGE = "too_large"
CONFLICTING_DUPLICATE = "conflicting_duplicate"

# Rejection codes for refunds that break the worker's own rules (worker/domain/rules.py).
REFUND_COUNT_EXCEEDED = "REFUND_COUNT_EXCEEDED"
REFUND_TOTAL_EXCEEDS_TRADE_AMOUNT = "REFUND_TOTAL_EXCEEDS_TRADE_AMOUNT"
MAX_REFUNDS_PER_TRADE = 99


@dataclass(frozen=True, slots=True)
class Message:
    """One refund.requested message as it goes on the bus."""

    body: bytes
    message_id: str
    refund_id: str | None = None  # the valid refund it belongs to (re-sends included)
    expect_dead: str | None = None  # dead-letter reason it must get, if any


@dataclass
class Load:
    """What a scenario publishes and what must come of it."""

    messages: list[Message] = field(default_factory=list)
    # refund_id -> the request that stands (the first one published).
    valid: dict[str, dict[str, Any]] = field(default_factory=dict)
    # trade_no -> (refunds that must end rejected, the rejection code).
    rejections: dict[str, tuple[int, str]] = field(default_factory=dict)

    def add_valid(self, request: dict[str, Any]) -> None:
        refund_id = str(request["refund_id"])
        if refund_id in self.valid:
            raise ValueError(f"refund_id {refund_id} used twice in one load")
        self.valid[refund_id] = request
        self.messages.append(Message(_json(request), str(request["event_id"]), refund_id=refund_id))

    def add(self, message: Message) -> None:
        self.messages.append(message)

    def extend(self, other: Load) -> None:
        """Append another load's messages and expectations (refund_ids must not overlap)."""
        if set(other.valid) & set(self.valid):
            raise ValueError("the loads share refund_ids")
        self.messages.extend(other.messages)
        self.valid.update(other.valid)
        self.rejections.update(other.rejections)

    @property
    def expected_dead(self) -> dict[str, str]:
        return {m.message_id: m.expect_dead for m in self.messages if m.expect_dead}

    def shuffle_tail(self, rng: random.Random, start: int) -> None:
        """Shuffle messages[start:], keeping every valid request before its re-sends."""
        head, tail = self.messages[:start], self.messages[start:]
        rng.shuffle(tail)
        first: dict[str, int] = {}
        originals = {str(r["event_id"]) for r in self.valid.values()}
        ordered: list[Message] = []
        waiting: dict[str, list[Message]] = {}
        for message in tail:
            rid = message.refund_id
            if rid is None or message.message_id in originals or rid in first:
                ordered.append(message)
                if rid is not None and message.message_id in originals:
                    first[rid] = len(ordered)
                    ordered.extend(waiting.pop(rid, []))
            else:
                waiting.setdefault(rid, []).append(message)
        for rest in waiting.values():  # originals published in `head`
            ordered.extend(rest)
        self.messages = head + ordered


def _json(document: object) -> bytes:
    return json.dumps(document, ensure_ascii=False).encode("utf-8")


def trade_no(tag: int, n: int) -> str:
    """A 24-digit Alipay-style trade number unique to scenario `tag`."""
    return f"2026{tag:04d}{n:016d}"


def amount(rng: random.Random, low: int = 1, high: int = 9999) -> str:
    return f"{rng.randint(low, high) / 100:.2f}"


REASONS = (
    None,
    "size does not fit",
    "质量问题，买家退货",
    "broken ^ item | with # gateway $ characters",
    "x" * 300,
)


def request(
    rng: random.Random, refund_id: str, trade: str, value: str, **extra: Any
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "refund_id": refund_id,
        "trade_no": trade,
        "amount": value,
        "order_id": f"order-{refund_id}",
    }
    reason = rng.choice(REASONS)
    if reason is not None:
        doc["reason"] = reason
    if rng.random() < 0.2:
        doc["metadata"] = {"ticket": rng.randint(1, 10**6), "source": "chaos"}
    doc.update(extra)
    return doc


def good_load(
    rng: random.Random, *, refunds: int, trades: int, tag: int, prefix: str, resend: float = 0.0
) -> Load:
    """`refunds` valid requests spread over `trades` trades; `resend` of them sent twice."""
    load = Load()
    for i in range(refunds):
        load.add_valid(
            request(rng, f"{prefix}-{i}", trade_no(tag, rng.randrange(trades)), amount(rng))
        )
    for original in rng.sample(list(load.valid.values()), int(refunds * resend)):
        load.add(_resend(rng, original))
    return load


def _resend(rng: random.Random, original: dict[str, Any]) -> Message:
    """The same refund again, as an order system re-sends it (same content, maybe a new id)."""
    copy = dict(original)
    if rng.random() < 0.5:
        copy["event_id"] = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        copy["requested_at"] = "2026-03-01T12:00:00+08:00"
    if rng.random() < 0.3 and "." in copy["amount"] and copy["amount"].endswith("0"):
        copy["amount"] = copy["amount"][:-1]  # "12.50" and "12.5" are the same money
    if copy.get("metadata") and rng.random() < 0.5:
        copy["metadata"] = dict(reversed(list(copy["metadata"].items())))
    message_id = str(copy["event_id"]) if copy["event_id"] != original["event_id"] else _uid(rng)
    return Message(_json(copy), message_id, refund_id=str(original["refund_id"]))


def _uid(rng: random.Random) -> str:
    return uuid.UUID(int=rng.getrandbits(128), version=4).hex


# --- bad input ----------------------------------------------------------------------------

Breaker = Callable[[random.Random, dict[str, Any]], tuple[bytes, str]]


def _field(name: str, values: Iterable[object], reason: str) -> Breaker:
    choices = list(values)

    def breaker(rng: random.Random, doc: dict[str, Any]) -> tuple[bytes, str]:
        doc[name] = rng.choice(choices)
        return _json(doc), reason

    return breaker


def _missing(rng: random.Random, doc: dict[str, Any]) -> tuple[bytes, str]:
    del doc[rng.choice(("event_id", "refund_id", "trade_no", "amount"))]
    return _json(doc), SCHEMA_VIOLATION


def _unknown_field(rng: random.Random, doc: dict[str, Any]) -> tuple[bytes, str]:
    doc[rng.choice(("ammount", "tradeNo", "refund", "x"))] = "1.00"
    return _json(doc), SCHEMA_VIOLATION


def _not_object(rng: random.Random, doc: dict[str, Any]) -> tuple[bytes, str]:
    value = rng.choice([[doc], "refund", 42, None, True, []])
    return _json(value), SCHEMA_VIOLATION


def _truncated(rng: random.Random, doc: dict[str, Any]) -> tuple[bytes, str]:
    text = json.dumps(doc, ensure_ascii=True)  # ASCII: a cut never splits a character
    return text[: rng.randrange(1, len(text) - 1)].encode(), INVALID_JSON


def _garbage_text(rng: random.Random, doc: dict[str, Any]) -> tuple[bytes, str]:
    words = ["refund", "please", "{", "amount:", "=", "'1.00'", "<xml>", "NaN", "}"]
    return (" ".join(rng.choice(words) for _ in range(rng.randint(2, 8))) + " ~").encode(), (
        INVALID_JSON
    )


def _duplicate_key(rng: random.Random, doc: dict[str, Any]) -> tuple[bytes, str]:
    text = _json(doc).decode()
    return (text[:-1] + f', "amount": "{amount(rng)}"}}').encode(), INVALID_JSON


def _nan_amount(rng: random.Random, doc: dict[str, Any]) -> tuple[bytes, str]:
    text = _json(dict(doc, amount="@@")).decode()
    return text.replace('"@@"', rng.choice(("NaN", "Infinity", "-Infinity"))).encode(), (
        INVALID_JSON
    )


def _bad_utf8(rng: random.Random, doc: dict[str, Any]) -> tuple[bytes, str]:
    body = _json(dict(doc, reason="@@"))
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
    return _json(doc), SCHEMA_VIOLATION


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
        load.add(Message(_json(base), f"bad-too_large-{i}", expect_dead=TOO_LARGE))


def add_conflicts(load: Load, rng: random.Random, *, count: int) -> None:
    """Re-sends of stored refunds with different content: dead-lettered, the first stands."""
    for i, original in enumerate(rng.sample(list(load.valid.values()), count)):
        copy = dict(original, event_id=_uid(rng))
        change = rng.choice(("amount", "trade_no", "reason", "metadata", "order_id"))
        if change == "amount":
            copy["amount"] = f"{float(original['amount']) + 0.01:.2f}"
        elif change == "trade_no":
            copy["trade_no"] = original["trade_no"][:-1] + str(
                (int(original["trade_no"][-1]) + 1) % 10
            )
        elif change == "reason":
            copy["reason"] = f"{original.get('reason') or ''} (changed)"
        elif change == "metadata":
            copy["metadata"] = {"changed": True}
        else:
            copy["order_id"] = f"other-{i}"
        load.add(
            Message(
                _json(copy),
                f"conflict-{i}",
                refund_id=str(original["refund_id"]),
                expect_dead=CONFLICTING_DUPLICATE,
            )
        )


def add_rule_breakers(
    load: Load, rng: random.Random, *, tag: int, prefix: str, crowded: int, capped: int
) -> None:
    """Valid requests the worker must reject itself.

    `crowded` trades get 99 + k refunds (k rejected with REFUND_COUNT_EXCEEDED);
    `capped` trades carry a `trade_amount` that only some of their refunds fit in.
    """
    for t in range(crowded):
        trade = trade_no(tag, 8_000_000 + t)
        extra = rng.randint(1, 6)
        for i in range(MAX_REFUNDS_PER_TRADE + extra):
            load.add_valid(request(rng, f"{prefix}-crowd-{t}-{i}", trade, "1.00"))
        load.rejections[trade] = (extra, REFUND_COUNT_EXCEEDED)
    for t in range(capped):
        trade = trade_no(tag, 8_500_000 + t)
        fit = rng.randint(1, 5)
        over = rng.randint(1, 4)
        for i in range(fit + over):
            load.add_valid(
                request(rng, f"{prefix}-cap-{t}-{i}", trade, "10.00", trade_amount=f"{fit * 10}.00")
            )
        load.rejections[trade] = (over, REFUND_TOTAL_EXCEEDS_TRADE_AMOUNT)


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
