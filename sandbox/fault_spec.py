"""The grammar of a fault set: each fault's options and defaults, and its validation.

`parse_fault_set` turns a fault set given as parsed JSON (the catalog of
faults and their options is the docstring of `sandbox.faults`) into a
`FaultSet` of `Fault`s; a `ConfigError` names the first problem. Pure: no
dice, no lock, no log. `sandbox.faults` re-exports `Fault`, `FaultSet`,
`FAULT_NAMES` and `parse_fault_set`, and holds the dice (`FaultBook`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from sandbox.openapi.fault_names import OPENAPI_OPTIONS, PREFIX
from sandbox.openapi.fault_names import SERVICES as OPENAPI_SERVICES
from worker.domain.errors import ConfigError

__all__ = ["FAULT_NAMES", "GARBAGE_BODIES", "SERVICES", "Fault", "FaultSet", "parse_fault_set"]

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
