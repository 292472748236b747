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

The module is pure apart from its lock: `parse_fault_set` validates input,
`FaultBook` owns the dice (one `random.Random`, seeded) and the counters.
"""

from __future__ import annotations

import math
import random
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import structlog

from sandbox.openapi.fault_names import OPENAPI_OPTIONS, PREFIX
from sandbox.openapi.fault_names import SERVICES as OPENAPI_SERVICES
from worker.domain.errors import ConfigError

__all__ = [
    "FAULT_NAMES",
    "Fault",
    "FaultBook",
    "FaultSet",
    "log_injected",
    "parse_fault_set",
]

log = structlog.get_logger(__name__)

SERVICES: Final = ("refund", "notify_verify", "query", "any")
GARBAGE_BODIES: Final = ("any", "html", "truncated")
_CODE = re.compile(r"[A-Z][A-Z0-9_]{2,63}", re.ASCII)
_TRADE_NO = re.compile(r"[0-9]{16,64}", re.ASCII)
_MAX_SECONDS = 3600.0
_MAX_TRADE_NOS = 10_000

# name -> {option: default}; `rate` and `count` are common to all.
_OPTIONS: Final[dict[str, dict[str, Any]]] = {
    "http_5xx": {"status": 503, "accept": False, "service": "refund"},
    "hang": {"seconds": 60.0, "accept": True, "service": "refund"},
    "slow": {"seconds": 2.0, "service": "refund"},
    "reset_after_accept": {},
    "lock_error": {},
    "sync_item_failure": {"code": "TRADE_STATUS_ERROR", "trade_nos": None},
    "item_failure": {"code": "SELLER_BALANCE_NOT_ENOUGH", "trade_nos": None},
    "notify_lost": {},
    "notify_duplicate": {},
    "notify_reorder": {"after": 1, "max_hold_seconds": 10.0},
    "notify_bad_sign": {},
    "notify_never": {},
    "result_shapes": {"odd_codes": ()},
    "garbage": {"service": "query", "accept": True, "body": "any"},
    **OPENAPI_OPTIONS,
}
FAULT_NAMES: Final = tuple(name for name in _OPTIONS if not name.startswith(PREFIX))


@dataclass(frozen=True)
class Fault:
    """One configured fault: when it fires (`rate`, `count`) and its options."""

    name: str
    rate: float | None = None
    count: int | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    def option(self, key: str) -> Any:
        """The value of an option, or its default."""
        return self.options.get(key, _OPTIONS[self.name][key])

    def applies_to(self, service: str) -> bool:
        """Whether a fault is meant for requests of `service` (refund, notify_verify, query)."""
        if "service" not in _OPTIONS[self.name]:
            return service == "refund"
        wanted = self.option("service")
        return bool(wanted == "any" or wanted == service)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.rate is not None:
            out["rate"] = self.rate
        if self.count is not None:
            out["count"] = self.count
        for key, value in self.options.items():
            if isinstance(value, frozenset):
                value = sorted(value)
            out[key] = list(value) if isinstance(value, tuple) else value
        return out


@dataclass(frozen=True)
class FaultSet:
    """A validated set of faults, plus an optional seed for the dice."""

    faults: Mapping[str, Fault] = field(default_factory=dict)
    seed: int | None = None


def parse_fault_set(spec: object) -> FaultSet:
    """Validate a fault set given as parsed JSON; ConfigError names the first problem."""
    if spec is None:
        return FaultSet()
    if not isinstance(spec, Mapping):
        raise ConfigError("faults must be a JSON object of fault name -> settings")
    seed: int | None = None
    faults: dict[str, Fault] = {}
    for name, settings in spec.items():
        if name == "seed":
            if isinstance(settings, bool) or not isinstance(settings, int):
                raise ConfigError("faults: seed must be an integer")
            seed = settings
            continue
        if name == "openapi":
            faults.update(_parse_scope(settings))
            continue
        if name not in _OPTIONS:
            raise ConfigError(
                f"faults: unknown fault {str(name)[:40]!r} (known: {', '.join(FAULT_NAMES)})"
            )
        faults[name] = _parse_fault(name, settings)
    return FaultSet(faults=faults, seed=seed)


def _parse_scope(spec: object) -> dict[str, Fault]:
    """The `openapi` scope: {name: settings} of OpenAPI faults, named `openapi.<name>`."""
    if not isinstance(spec, Mapping):
        raise ConfigError("faults: openapi must be an object of fault name -> settings")
    known = ", ".join(name.removeprefix(PREFIX) for name in OPENAPI_OPTIONS)
    faults: dict[str, Fault] = {}
    for name, settings in spec.items():
        if PREFIX + str(name) not in OPENAPI_OPTIONS:
            raise ConfigError(f"faults: unknown openapi fault {str(name)[:40]!r} (known: {known})")
        faults[PREFIX + name] = _parse_fault(PREFIX + name, settings)
    return faults


def _parse_fault(name: str, settings: object) -> Fault:
    if settings is True:
        settings = {}
    if not isinstance(settings, Mapping):
        raise ConfigError(f"faults: {name} must be an object (or true)")
    rate = settings.get("rate")
    count = settings.get("count")
    if rate is not None:
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate <= 1:
            raise ConfigError(f"faults: {name}.rate must be a number between 0 and 1")
        rate = float(rate)
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 0):
        raise ConfigError(f"faults: {name}.count must be an integer >= 0")
    options: dict[str, Any] = {}
    defaults = _OPTIONS[name]
    for key, value in settings.items():
        if key in ("rate", "count"):
            continue
        if key not in defaults:
            raise ConfigError(f"faults: {name} has no option {str(key)[:40]!r}")
        options[key] = _check_option(name, key, value)
    return Fault(name=name, rate=rate, count=count, options=options)


def _check_option(name: str, key: str, value: object) -> Any:
    where = f"faults: {name}.{key}"
    if key == "status":
        if isinstance(value, bool) or not isinstance(value, int) or not 500 <= value <= 599:
            raise ConfigError(f"{where} must be an HTTP status between 500 and 599")
        return value
    if key == "accept":
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false")
        return value
    if key == "service":
        if name.startswith(PREFIX) and value not in OPENAPI_SERVICES:
            raise ConfigError(f"{where} must be one of {', '.join(OPENAPI_SERVICES)}")
        if value not in SERVICES:
            raise ConfigError(f"{where} must be one of {', '.join(SERVICES)}")
        return value
    if key in ("seconds", "max_hold_seconds"):
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or not 0 <= value <= _MAX_SECONDS
        ):
            raise ConfigError(f"{where} must be a number of seconds between 0 and {_MAX_SECONDS:g}")
        return float(value)
    if key == "after":
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1000:
            raise ConfigError(f"{where} must be an integer between 1 and 1000")
        return value
    if key == "code":
        if not isinstance(value, str) or not _CODE.fullmatch(value):
            raise ConfigError(
                f"{where} must be an upper-case error code such as TRADE_STATUS_ERROR"
            )
        return value
    if key == "body":
        if value not in GARBAGE_BODIES:
            raise ConfigError(f"{where} must be one of {', '.join(GARBAGE_BODIES)}")
        return value
    if key == "odd_codes":
        if (
            not isinstance(value, list)
            or len(value) > 100
            or not all(isinstance(c, str) and _CODE.fullmatch(c) and c != "SUCCESS" for c in value)
        ):
            raise ConfigError(f"{where} must be a list of upper-case failure codes")
        return tuple(value)
    if key == "trade_nos":
        if value is None:
            return None
        if (
            not isinstance(value, list)
            or len(value) > _MAX_TRADE_NOS
            or not all(isinstance(t, str) and _TRADE_NO.fullmatch(t) for t in value)
        ):
            raise ConfigError(f"{where} must be a list of trade numbers (16-64 digits)")
        return frozenset(value)
    raise ConfigError(f"{where} is not supported")  # pragma: no cover - guarded by _OPTIONS


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
