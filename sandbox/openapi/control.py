"""The control API's OpenAPI part: trades, envelopes, the ledger, settings, info.

* `POST /_sandbox/openapi/trades`: `{"trade_no"?, "out_trade_no"?, "amount",
  "status"="paid"|"closed"}` (at least one number; a missing `trade_no` is
  made up), or `{"trades": [...]}`; answers the trade(s).
* `POST /_sandbox/openapi/envelopes`: `{"auth_no"?, "amount",
  "status"="open"|"closed"}` (a missing `auth_no` is made up), or
  `{"envelopes": [...]}`; answers the envelope(s).
* `GET /_sandbox/openapi/ledger`: trades, envelopes, every refund made, the
  coupon notifications (`OpenApiBooks.view`).
* Settings (`PUT /_sandbox/settings`): `openapi_answer_shapes` `plain` (the
  default) or `vary` (`sandbox.openapi.writer`), `openapi_coupon_status`
  `SUCCESS` (the default) or `INIT` (coupon refunds are finished later).

Bad input raises ValueError naming the field (answered 400).
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Any, Final

import structlog

from sandbox.openapi.gateway import OpenApiGateway
from worker.domain.errors import ConfigError, DetailDataError
from worker.mapi import format_amount, is_valid_trade_no, parse_amount

__all__ = [
    "OPENAPI_SETTINGS",
    "check_openapi_setting",
    "create_envelopes",
    "create_trades",
    "ledger",
    "openapi_info",
    "openapi_summary",
]

log = structlog.get_logger(__name__)

OPENAPI_SETTINGS: Final = {
    "openapi_answer_shapes": ("plain", "vary"),
    "openapi_coupon_status": ("SUCCESS", "INIT"),
}
_OUT_TRADE_NO = re.compile(r"[\x21-\x7e]{1,64}", re.ASCII)
_AUTH_NO = re.compile(r"[A-Za-z0-9]{1,64}", re.ASCII)


def check_openapi_setting(name: str, value: object) -> str:
    """A valid value of an OpenAPI setting; ConfigError naming it otherwise."""
    allowed = OPENAPI_SETTINGS[name]
    if value not in allowed:
        raise ConfigError(f"{name} must be one of {', '.join(allowed)}")
    return str(value)


def create_trades(gateway: OpenApiGateway, data: object, today: str) -> dict[str, Any]:
    """Create or change OpenAPI trades (see the module docstring)."""
    entries, many = _entries(data, "trades")
    made = []
    for entry in entries:
        trade_no, out_trade_no = entry.get("trade_no"), entry.get("out_trade_no")
        if trade_no is None and out_trade_no is None:
            raise ValueError("give trade_no and/or out_trade_no")
        if trade_no is not None and (
            not isinstance(trade_no, str) or not is_valid_trade_no(trade_no)
        ):
            raise ValueError("trade_no must be 16-64 digits")
        if out_trade_no is not None and (
            not isinstance(out_trade_no, str) or not _OUT_TRADE_NO.fullmatch(out_trade_no)
        ):
            raise ValueError("out_trade_no must be 1-64 printable ASCII characters")
        status = entry.get("status", "paid")
        if status not in ("paid", "closed"):
            raise ValueError("status must be paid or closed")
        trade = gateway.books.add_trade(
            trade_no=trade_no,
            out_trade_no=out_trade_no,
            amount=_amount(entry),
            status=str(status),
            today=today,
        )
        log.info(
            "sandbox.openapi.trade.created",
            trade_no=trade.trade_no,
            amount=format_amount(trade.paid),
            status=trade.status,
        )
        made.append(trade.to_json())
    return {"trades": made} if many else made[0]


def create_envelopes(gateway: OpenApiGateway, data: object, today: str) -> dict[str, Any]:
    """Create or change red envelopes (see the module docstring)."""
    entries, many = _entries(data, "envelopes")
    made = []
    for entry in entries:
        auth_no = entry.get("auth_no")
        if auth_no is not None and (
            not isinstance(auth_no, str) or not _AUTH_NO.fullmatch(auth_no)
        ):
            raise ValueError("auth_no must be 1-64 letters or digits")
        status = entry.get("status", "open")
        if status not in ("open", "closed"):
            raise ValueError("status must be open or closed")
        envelope = gateway.books.add_envelope(
            auth_no=auth_no, amount=_amount(entry), status=str(status), today=today
        )
        log.info(
            "sandbox.openapi.envelope.created",
            auth_no=envelope.auth_no,
            amount=format_amount(envelope.amount),
            status=envelope.status,
        )
        made.append(envelope.to_json())
    return {"envelopes": made} if many else made[0]


def openapi_summary(gateway: OpenApiGateway) -> dict[str, Any]:
    summary = gateway.books.summary()
    summary["notifications"]["queued"] = gateway.notifier.queued()
    return summary


def ledger(gateway: OpenApiGateway) -> dict[str, Any]:
    return gateway.books.view(time.time())


def openapi_info(
    apps: Mapping[str, str], public_pem: bytes, public_path: str, settings: Mapping[str, str]
) -> dict[str, Any]:
    """The `openapi` part of `GET /_sandbox/info` (never a private key)."""
    return {
        "gateway_path": "/openapi/gateway.do",
        "alipay_public_key": public_pem.decode("ascii"),
        "alipay_public_key_file": public_path,
        "apps": [{"app_id": app_id, "partner": partner} for app_id, partner in apps.items()],
        **settings,
    }


def _entries(data: object, plural: str) -> tuple[list[Mapping[str, Any]], bool]:
    many = isinstance(data, dict) and plural in data
    entries = data.get(plural) if many and isinstance(data, dict) else [data]
    if (
        not isinstance(entries, list)
        or not entries
        or not all(isinstance(e, dict) for e in entries)
    ):
        raise ValueError(f'expected an object or {{"{plural}": [...]}}')
    return entries, many


def _amount(entry: Mapping[str, Any]) -> Any:
    text = entry.get("amount")
    try:
        return parse_amount(text if isinstance(text, str) else "")
    except DetailDataError:
        raise ValueError('amount must be a string like "100.00" (> 0, two decimals)') from None
