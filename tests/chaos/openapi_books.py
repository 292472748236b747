"""The OpenAPI channels in the chaos checks: the gateway's books against the ledger.

`gather` reads, once a run has settled, the OpenAPI refunds of the ledger and every
refund the sandbox's OpenAPI books made (`GET /_sandbox/openapi/ledger`) with their red
flags (`openapi` of `/_sandbox/summary`). `check_openapi_payments` is the payment
witness of `tests.chaos.checks` for these channels: each refund the books made must be
one the ledger holds as succeeded (or still open: paid, its answer not known yet), under
the out_request_no, amount and trade or envelope the ledger has for it; each one the
ledger holds as succeeded must be in the books; and the books' own red flags
(`double_executed`, `over_refunded`) must be empty. A scenario without OpenAPI refunds
finds both sides empty.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.chaos.checks import Result

# (channel, out_request_no, amount): one refund the books made, or the ledger holds.
Key = tuple[str, str, Decimal]
FINAL = ("succeeded", "failed", "rejected")

Query = Callable[..., list[tuple[Any, ...]]]


@dataclass
class OpenApiState:
    # refund_id -> (state, channel, out_request_no, amount, numbers naming its trade/envelope)
    refunds: dict[str, tuple[str, str, str, Decimal, frozenset[str]]] = field(default_factory=dict)
    # key -> the numbers (trade_no and out_trade_no, or auth_no) of each execution
    executions: dict[Key, list[frozenset[str]]] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)


def gather(query: Query, ledger: dict[str, Any], summary: dict[str, Any]) -> OpenApiState:
    """The OpenAPI side of the final state (`ledger`, `summary`: the sandbox's views)."""
    state = OpenApiState(summary=summary.get("openapi") or {})
    for refund_id, st, channel, number, out_trade, auth, request_no, amount in query(
        "SELECT refund_id, state, channel, trade_no, out_trade_no, auth_no, out_request_no,"
        " amount FROM refunds WHERE channel <> 'batch'"
    ):
        names = frozenset(n for n in (number, out_trade, auth) if n)
        state.refunds[str(refund_id)] = (str(st), str(channel), str(request_no), amount, names)
    for r in ledger.get("trade_refunds", []):
        key = ("trade", r["out_request_no"], Decimal(r["amount"]))
        names = frozenset({r["trade_no"], r["out_trade_no"]})
        state.executions.setdefault(key, []).append(names)
    for o in ledger.get("coupon_refunds", []):
        key = ("coupon", o["out_request_no"], Decimal(o["amount"]))
        state.executions.setdefault(key, []).append(frozenset({o["auth_no"]}))
    return state


def check_openapi_payments(result: Result, state: OpenApiState) -> None:
    """No OpenAPI refund paid twice or paid without the ledger knowing (module docstring)."""
    succeeded: Counter[Key] = Counter()
    open_: Counter[Key] = Counter()
    names: dict[Key, frozenset[str]] = {}
    for st, channel, request_no, amount, numbers in state.refunds.values():
        key = (channel, request_no, Decimal(amount))
        names[key] = numbers
        if st == "succeeded":
            succeeded[key] += 1
        elif st not in FINAL:
            open_[key] += 1
    executed = Counter({k: len(v) for k, v in state.executions.items()})
    beyond = executed - succeeded
    waiting = beyond & open_
    excess = sum((beyond - waiting).values())
    phantom = sum((succeeded - executed).values())
    misplaced = [
        key[1]
        for key, made in state.executions.items()
        if key in names and any(not (n & names[key]) for n in made)
    ]
    doubles = state.summary.get("double_executed") or []
    over = state.summary.get("over_refunded") or []
    result.double_paid += excess + len(doubles)
    result.notes["openapi_paid"] = sum(executed.values())
    if waiting:
        result.notes["openapi_paid_not_yet_known"] = sum(waiting.values())
    if excess:
        result.violations.append(
            f"the OpenAPI gateway made {excess} refunds the ledger does not hold as succeeded"
        )
    if phantom:
        result.violations.append(f"{phantom} OpenAPI refunds succeeded but were never paid")
    if misplaced:
        result.violations.append(
            f"{len(misplaced)} OpenAPI refunds paid on another trade or envelope: {misplaced[:5]}"
        )
    if doubles:
        result.violations.append(f"sandbox openapi.double_executed: {doubles[:5]}")
    if over:
        result.violations.append(f"sandbox openapi.over_refunded: {over[:5]}")
