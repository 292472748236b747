"""Mixed-channel refund loads for the end-to-end tests and the fault suite.

`mixed_load` draws refunds of the three channels interleaved: `batch` (mapi), `trade`
(`alipay.trade.refund`, the trade named by `trade_no`, by `out_trade_no` or by both) and
`coupon` (`alipay.fund.coupon.order.refund`, by `auth_no`), several per trade and per
red envelope. The OpenAPI trades and envelopes are made with amounts that fit their
refunds: half of them exactly the sum (the last refund takes what is left), half a little
more. `create_books` puts them in the sandbox's OpenAPI books, so `over_refunded` there
means money out beyond what was paid.

`paid_openapi` reads what the sandbox's OpenAPI books executed, in the form
`expected_openapi` gives for the refunds a test holds as succeeded, so a test compares
the two multisets.
"""

from __future__ import annotations

import random
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sandbox.client import SandboxClient

__all__ = [
    "CHANNELS",
    "MixedLoad",
    "create_books",
    "expected_openapi",
    "mixed_load",
    "paid_openapi",
]

CHANNELS = ("batch", "trade", "coupon")
# (kind, trade_no or auth_no, out_request_no, amount): one execution in the OpenAPI books.
Paid = tuple[str, str, str, Decimal]


@dataclass
class MixedLoad:
    """The requests to publish and the OpenAPI books they need."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    channel: dict[str, str] = field(default_factory=dict)  # refund_id -> channel
    trades: dict[str, tuple[str, Decimal]] = field(default_factory=dict)  # trade_no -> (out, paid)
    envelopes: dict[str, Decimal] = field(default_factory=dict)  # auth_no -> amount

    def of(self, channel: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if self.channel[r["refund_id"]] == channel]

    def trade_of(self, request: Mapping[str, Any]) -> str:
        """The Alipay trade number of a `trade` refund, however the request names it."""
        if request.get("trade_no"):
            return str(request["trade_no"])
        out = request["out_trade_no"]
        return next(t for t, (o, _) in self.trades.items() if o == out)


def _cents(rng: random.Random) -> int:
    return rng.randint(1, 9999)


def _money(cents: int) -> str:
    return f"{Decimal(cents) / 100:.2f}"


def mixed_load(
    rng: random.Random,
    *,
    refunds: int,
    tag: int,
    prefix: str,
    shares: tuple[float, float, float] = (0.4, 0.35, 0.25),
    per_trade: int = 3,
) -> MixedLoad:
    """`refunds` requests, `shares` of them batch / trade / coupon, interleaved at random;
    about `per_trade` refunds per trade and per envelope. Numbers are unique to `tag`."""
    load = MixedLoad()
    counts = [int(refunds * s) for s in shares]
    counts[0] += refunds - sum(counts)
    drafts: list[tuple[str, int, int]] = []  # (channel, group, cents)
    for channel, count in zip(CHANNELS, counts, strict=True):
        groups = max(1, count // per_trade)
        drafts += [(channel, rng.randrange(groups), _cents(rng)) for _ in range(count)]
    rng.shuffle(drafts)
    totals: Counter[tuple[str, int]] = Counter()
    for channel, group, cents in drafts:
        totals[(channel, group)] += cents
    for (channel, group), total in sorted(totals.items()):
        paid = Decimal(total + (100 if group % 2 else 0)) / 100
        if channel == "trade":
            load.trades[_trade_no(tag, 7, group)] = (f"out-{tag}-{group}", paid)
        elif channel == "coupon":
            load.envelopes[_auth_no(tag, group)] = paid
    for n, (channel, group, cents) in enumerate(drafts):
        refund_id = f"{prefix}-{channel}-{n}"
        doc: dict[str, Any] = {
            "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "refund_id": refund_id,
            "amount": _money(cents),
            "order_id": f"order-{refund_id}",
        }
        if channel == "batch":
            doc["trade_no"] = _trade_no(tag, 6, group)
        elif channel == "trade":
            doc["channel"] = "trade"
            trade_no = _trade_no(tag, 7, group)
            naming = group % 3  # by trade_no, by out_trade_no, by both
            if naming != 1:
                doc["trade_no"] = trade_no
            if naming != 0:
                doc["out_trade_no"] = load.trades[trade_no][0]
        else:
            doc["channel"] = "coupon"
            doc["auth_no"] = _auth_no(tag, group)
        if rng.random() < 0.3:
            doc["reason"] = rng.choice(("size does not fit", "红包未领取部分退回", "a # b ^ c"))
        load.requests.append(doc)
        load.channel[refund_id] = channel
    return load


def _trade_no(tag: int, kind: int, n: int) -> str:
    return f"2026{tag:04d}{kind}{n:015d}"


def _auth_no(tag: int, n: int) -> str:
    return f"2026{tag:04d}8{n:015d}"


def create_books(client: SandboxClient, load: MixedLoad) -> None:
    """The load's OpenAPI trades and red envelopes in the sandbox's books."""
    for trade_no, (out_trade_no, paid) in load.trades.items():
        client.create_openapi_trade(paid, trade_no=trade_no, out_trade_no=out_trade_no)
    for auth_no, amount in load.envelopes.items():
        client.create_envelope(amount, auth_no=auth_no)


def paid_openapi(ledger: Mapping[str, Any]) -> Counter[Paid]:
    """Every refund the sandbox's OpenAPI books hold (`GET /_sandbox/openapi/ledger`)."""
    paid: Counter[Paid] = Counter()
    for r in ledger["trade_refunds"]:
        paid[("trade", r["trade_no"], r["out_request_no"], Decimal(r["amount"]))] += 1
    for o in ledger["coupon_refunds"]:
        paid[("coupon", o["auth_no"], o["out_request_no"], Decimal(o["amount"]))] += 1
    return paid


def expected_openapi(
    load: MixedLoad, refund_ids: Iterable[str], out_request_no: Mapping[str, str]
) -> Counter[Paid]:
    """What the books must hold for these OpenAPI refunds (`out_request_no` by refund id)."""
    by_id = {r["refund_id"]: r for r in load.requests}
    want: Counter[Paid] = Counter()
    for refund_id in refund_ids:
        request, channel = by_id[refund_id], load.channel[refund_id]
        number = load.trade_of(request) if channel == "trade" else str(request.get("auth_no"))
        want[(channel, number, out_request_no[refund_id], Decimal(request["amount"]))] += 1
    return want
