"""Faults the sandbox injects on request, and the seeded dice that decide when.

A fault set is a JSON object mapping fault names to their settings, e.g.::

    {"http_5xx": {"rate": 0.1, "status": 502},
     "reset_after_accept": {"count": 1},
     "item_failure": {"rate": 0.01, "code": "SELLER_BALANCE_NOT_ENOUGH"},
     "seed": 7}

Every fault takes `rate` (probability in [0, 1] that one opportunity fires)
and/or `count` (how many times it may fire in all). Only `count`: the next
`count` opportunities fire. Only `rate`: each fires with that probability,
forever. Both: with that probability until `count` have fired. Neither:
every opportunity fires. The optional top-level `seed` reseeds the dice.

Opportunities (where each fault is drawn; gateway faults only apply to
refund and query requests that passed every check of
`sandbox.validation`, and to every `notify_verify`):

* `http_5xx` {status=503, accept=false, service="refund"}: answer an HTML
  error page with that status. `accept=false` answers before the batch is
  taken; `accept=true` takes the batch first (a proxy failing after the
  gateway did its work). `service` is `refund`, `notify_verify`, `query`
  (`refund_fastpay_query`) or `any`; `accept` only matters for `refund`.
* `hang` {seconds=60, accept=true, service="refund"}: answer only after
  `seconds` (past any sensible client timeout). With `accept=true` the batch
  is taken before the wait and the late answer is `T` (a query: its real
  answer); with `accept=false` nothing is recorded and the late answer is a
  504 page.
* `slow` {seconds=2, service="refund"}: take the batch, answer `T` after
  `seconds` (meant to stay within the client's timeout); a query or
  `notify_verify` gets its real answer late.
* `garbage` {service="query", accept=true, body="any"}: answer 200 with a
  body no client can parse: `html` (a busy page), `truncated` (the real kind
  of answer cut off in the middle) or `any` (either, by the dice). For
  `refund`, `accept` says whether the batch is taken first.
* `reset_after_accept`: take the batch, then reset the TCP connection
  (RST, no answer at all).
* `lock_error`: answer `F` / `BATCH_REFUND_LOCK_ERROR`; nothing recorded.
* `sync_item_failure` {code="TRADE_STATUS_ERROR", trade_nos=null}: a trade
  drawn as failing stays failing; a batch holding one is refused
  synchronously with `F` / that code (as some gateways do), so splitting the
  batch isolates it. `trade_nos` limits the fault to those trades.
* `item_failure` {code="SELLER_BALANCE_NOT_ENOUGH", trade_nos=null}: drawn
  per item of an accepted batch; the item is refused in `result_details`.
* `notify_lost`: a delivery attempt is skipped silently; the resend
  schedule goes on as if the merchant had not answered.
* `notify_duplicate`: the notification is posted twice in a row.
* `notify_reorder` {after=1, max_hold_seconds=10}: the delivery is held
  back until `after` other deliveries went out (or the hold expires).
* `notify_bad_sign`: a forged copy (same notify_id, every item turned into
  SUCCESS, signed with a wrong key) is posted before the genuine one.
* `notify_never`: drawn once per accepted batch; a drawn batch's
  notification is never sent at all (unlike `notify_lost`, which skips one
  attempt and keeps resending). Only the refund query tells what happened.
* `result_shapes` {odd_codes=[]}: drawn once per accepted batch; its
  notification writes `result_details` in the grammar's other legal shapes,
  chosen per item with the dice (`sandbox.shapes`), with the same
  trades, amounts and codes. `odd_codes`, when given, replaces the code of
  every item that failed anyway by one of these codes (picked by the dice;
  e.g. `REFUND_CHARGE_ERROR_X`, a code the worker does not know), in the
  books as well, so the query reports the same code.

The OpenAPI gateway's faults sit under the key `openapi` of the same set
(`sandbox.openapi.fault_names`), named `openapi.<name>` in the book.

The grammar (each fault's options and defaults) and its validation,
`parse_fault_set`, live in `sandbox.fault_spec` and are re-exported here;
this module holds `FaultBook`, which owns the dice (one `random.Random`,
seeded) and the counters, behind its lock.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import structlog

from sandbox.fault_spec import FAULT_NAMES, Fault, FaultSet, parse_fault_set

__all__ = [
    "FAULT_NAMES",
    "Fault",
    "FaultBook",
    "FaultSet",
    "log_injected",
    "parse_fault_set",
]

log = structlog.get_logger(__name__)


@dataclass
class _Live:
    fault: Fault
    fired: int = 0


class FaultBook:
    """The faults in force, the seeded dice and how often each fault fired.

    Thread-safe: every draw takes the book's lock, so counts are exact under
    concurrency. The dice are one `random.Random(seed)`; with concurrent
    requests the sequence of opportunities (and so which one fires) depends
    on scheduling, but a single client sees the same faults for the same seed.
    """

    def __init__(self, fault_set: FaultSet | None = None, *, seed: int | None = None) -> None:
        self._lock = threading.Lock()
        self._seed = seed
        self._rng = random.Random(seed)
        self._live: dict[str, _Live] = {}
        self._fired_total: dict[str, int] = {}
        # trade_no -> code (or None): the sticky decision of sync_item_failure.
        self._sync_decisions: dict[str, str | None] = {}
        if fault_set is not None:
            self.replace(fault_set)

    def replace(self, fault_set: FaultSet) -> None:
        """Put `fault_set` in force instead of the current one (counts start again)."""
        with self._lock:
            self._live = {name: _Live(fault) for name, fault in fault_set.faults.items()}
            self._sync_decisions.clear()
            if fault_set.seed is not None:
                self._seed = fault_set.seed
                self._rng.seed(fault_set.seed)

    def clear(self) -> None:
        """Remove every fault."""
        self.replace(FaultSet())

    def active(self, name: str) -> bool:
        """Whether `name` is configured and can still fire."""
        with self._lock:
            live = self._live.get(name)
            return live is not None and not self._exhausted(live)

    def draw(self, name: str, *, service: str = "refund") -> Fault | None:
        """Roll for one opportunity of fault `name`; the Fault when it fires, else None."""
        with self._lock:
            live = self._live.get(name)
            if live is None or not live.fault.applies_to(service):
                return None
            return live.fault if self._roll(live) else None

    def item_failure(self, trade_no: str) -> str | None:
        """The code an item of an accepted batch fails with under `item_failure`, or None."""
        with self._lock:
            live = self._live.get("item_failure")
            if live is None or not _targets(live.fault, trade_no):
                return None
            return str(live.fault.option("code")) if self._roll(live) else None

    def sync_item_failure(self, trade_nos: Iterable[str]) -> str | None:
        """The code that refuses a batch holding these trades under `sync_item_failure`.

        A trade's fate is drawn once and then remembered, so the same trade
        keeps spoiling every batch it is in until the fault set changes.
        """
        with self._lock:
            live = self._live.get("sync_item_failure")
            if live is None:
                return None
            code = str(live.fault.option("code"))
            for trade_no in trade_nos:
                if trade_no in self._sync_decisions:
                    decided = self._sync_decisions[trade_no]
                elif not _targets(live.fault, trade_no):
                    continue
                else:
                    decided = code if self._roll(live) else None
                    self._sync_decisions[trade_no] = decided
                if decided is not None:
                    return decided
            return None

    def randbits(self, bits: int) -> int:
        """A number from the dice (e.g. the seed of a per-batch choice)."""
        with self._lock:
            return self._rng.getrandbits(bits)

    def choice(self, options: tuple[str, ...]) -> str:
        """One of `options`, picked by the dice."""
        with self._lock:
            return self._rng.choice(options)

    def snapshot(self) -> dict[str, Any]:
        """What is in force, how often each fault fired, and the seed (`GET /_sandbox/faults`)."""
        with self._lock:
            faults = {}
            for name, live in self._live.items():
                entry = live.fault.to_json()
                entry["fired"] = live.fired
                if live.fault.count is not None:
                    entry["remaining"] = max(live.fault.count - live.fired, 0)
                faults[name] = entry
            return {"faults": faults, "fired_total": dict(self._fired_total), "seed": self._seed}

    def _exhausted(self, live: _Live) -> bool:
        return live.fault.count is not None and live.fired >= live.fault.count

    def _roll(self, live: _Live) -> bool:
        if self._exhausted(live):
            return False
        rate = live.fault.rate
        if rate is not None and not (rate >= 1.0 or self._rng.random() < rate):
            return False
        live.fired += 1
        name = live.fault.name
        self._fired_total[name] = self._fired_total.get(name, 0) + 1
        return True


def _targets(fault: Fault, trade_no: str) -> bool:
    wanted = fault.option("trade_nos")
    return wanted is None or trade_no in wanted


def log_injected(name: str, batch_no: str | None, *, service: str = "refund") -> None:
    """Log that fault `name` fired (for the batch `batch_no`, when there is one)."""
    log.info("sandbox.fault.injected", fault=name, batch_no=batch_no, service=service)
