"""The faults of the OpenAPI gateway: the `openapi` scope of `PUT /_sandbox/faults`.

The OpenAPI gateway (`/openapi/gateway.do`) has faults of its own, set in the
same fault set as the mapi ones under the key `openapi`, so both gateways can
misbehave at once and independently::

    {"http_5xx": {"count": 1},                       # mapi
     "openapi": {"http_5xx": {"count": 1, "status": 502},
                 "unknown_error": {"accept": true},
                 "notify_lost": {"count": 2}},
     "seed": 7}

They share the dice, `rate` and `count` of the mapi faults (`sandbox.faults`)
and are shown by `GET /_sandbox/faults` as `openapi.<name>`; the flat name
(`"openapi.http_5xx": {...}`) is accepted too. `service` is `refund` (the two
refund methods, the default), `query` (the two queries) or `any`.

* `http_5xx` {status=503, accept=false, service="refund"}: an HTML error page
  with that status; with `accept=true` the refund is made first.
* `hang` {seconds=60, accept=true, service="refund"}: answer after `seconds`;
  with `accept=true` the refund is made and the late answer is the real one,
  with `accept=false` nothing is made and the late answer is a 504 page.
* `slow` {seconds=2, service="refund"}: the real answer, `seconds` late.
* `reset_after_accept`: make the refund, then reset the TCP connection.
* `unknown_error` {accept=false, service="refund"}: answer a signed `20000`
  `isp.unknow-error`; with `accept=true` the refund is made first.
* `coupon_init`: a coupon refund answers `status` `INIT`; the operation turns
  `SUCCESS` (and is notified) after the processing delay.
* `notify_lost`, `notify_duplicate`, `notify_reorder` {after=1,
  max_hold_seconds=10}, `notify_bad_sign`: the coupon notifications' delivery
  faults, as on the mapi side (`sandbox.notifier`).
* `notify_slow` {seconds=5}: a delivery attempt goes out `seconds` (real
  seconds, not scaled) later than the resend schedule says.
"""

from __future__ import annotations

from typing import Any, Final

__all__ = ["OPENAPI_FAULTS", "OPENAPI_OPTIONS", "PREFIX", "SERVICES"]

PREFIX: Final = "openapi."
SERVICES: Final = ("refund", "query", "any")

OPENAPI_FAULTS: Final[dict[str, dict[str, Any]]] = {
    "http_5xx": {"status": 503, "accept": False, "service": "refund"},
    "hang": {"seconds": 60.0, "accept": True, "service": "refund"},
    "slow": {"seconds": 2.0, "service": "refund"},
    "reset_after_accept": {},
    "unknown_error": {"accept": False, "service": "refund"},
    "coupon_init": {},
    "notify_lost": {},
    "notify_duplicate": {},
    "notify_reorder": {"after": 1, "max_hold_seconds": 10.0},
    "notify_bad_sign": {},
    "notify_slow": {"seconds": 5.0},
}
# The names as the fault book knows them.
OPENAPI_OPTIONS: Final = {PREFIX + name: options for name, options in OPENAPI_FAULTS.items()}
