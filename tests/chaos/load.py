"""The traffic a chaos scenario sends: good refund requests, their re-sends, and bad input.

Everything is drawn from one `random.Random(seed)`, so a scenario sends the same
messages every time it runs. Each message carries its own AMQP message_id; bad
messages carry the dead-letter reason the worker must give them (README, "Events", and
`schemas/refund.requested.v1.json`), decided here from how the message was broken,
never by asking the worker's own parser.

The broken requests and the forged notifications are in `tests.chaos.broken`.
"""

from __future__ import annotations

import json
import random
import uuid
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
        self.messages.append(
            Message(json_body(request), str(request["event_id"]), refund_id=refund_id)
        )

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


def json_body(document: object) -> bytes:
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
    return Message(json_body(copy), message_id, refund_id=str(original["refund_id"]))


def _uid(rng: random.Random) -> str:
    return uuid.UUID(int=rng.getrandbits(128), version=4).hex


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
                json_body(copy),
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
