"""The control API of the sandbox service (`/_sandbox/...`), kept apart from the gateway.

`ControlAPI` is a base class of `sandbox.service.SandboxService`: the
methods here read and change the books, the faults, the clock and the
run-time settings on behalf of `sandbox.app`. The attributes it uses
are the service's (declared below for the type checker).

The control API is global, not per partner, except where a body or query
names a partner: external refunds are made by one partner's console (the
default partner's unless `"partner"` is given), and the ledger view can be
narrowed to one partner. `info` lists every partner served (id and the
sign types it accepts, never a key) under `partners`; its top-level
`partner`, `md5` and `rsa` describe the first (default) partner.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import Any

import structlog

from sandbox.bookkeeper import Bookkeeper
from sandbox.clock import SandboxClock
from sandbox.config import (
    DEFAULT_PAYMENT_PASSWORD,
    SandboxConfig,
    check_notify_verify_seconds,
    check_payment_password,
    check_refund_limit_mode,
)
from sandbox.external import plan_external
from sandbox.faults import FaultBook, parse_fault_set
from sandbox.keys import AlipayKeys
from sandbox.ledger import TRADE_STATUSES
from sandbox.notifier import Notifier
from sandbox.openapi import control as openapi_control
from sandbox.openapi.control import OPENAPI_SETTINGS, check_openapi_setting
from sandbox.openapi.gateway import OpenApiGateway
from sandbox.records import ClockRecord, TradeRecord
from sandbox.reports import ledger_summary, ledger_view
from worker.domain.errors import DetailDataError
from worker.mapi import format_amount, is_valid_trade_no, parse_amount
from worker.observability.logging import register_secret

__all__ = ["ControlAPI"]

log = structlog.get_logger(__name__)

_SETTINGS = ("refund_limit_mode", "notify_verify_seconds", "payment_password", *OPENAPI_SETTINGS)


class ControlAPI:
    """The service's control methods (see the module docstring)."""

    config: SandboxConfig
    books: Bookkeeper
    faults: FaultBook
    clock: SandboxClock
    notifier: Notifier
    refund_limit_mode: str
    notify_verify_seconds: float
    payment_password: str
    openapi: OpenApiGateway
    openapi_settings: dict[str, str]
    _keys: AlipayKeys
    _openapi_keys: AlipayKeys

    def _at(self) -> str:
        return self.clock.stamp()

    def create_trade(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """Create or change a paid trade: {"trade_no", "amount", "status"="paid"}."""
        trade_no = data.get("trade_no")
        if not isinstance(trade_no, str) or not is_valid_trade_no(trade_no):
            raise ValueError("trade_no must be 16-64 digits")
        amount_text = data.get("amount")
        try:
            amount = parse_amount(amount_text if isinstance(amount_text, str) else "")
        except DetailDataError:
            raise ValueError('amount must be a string like "100.00" (> 0, two decimals)') from None
        status = data.get("status", "paid")
        if status not in TRADE_STATUSES:
            raise ValueError(f"status must be one of {', '.join(TRADE_STATUSES)}")
        record = TradeRecord(
            trade_no=trade_no, amount=amount, status=str(status), ts=time.time(), at=self._at()
        )
        with self.books.lock:
            self.books.record_locked(record)
            view = self.books.ledger.trades[trade_no].to_json()
        log.info(
            "sandbox.trade.created", trade_no=trade_no, amount=format_amount(amount), status=status
        )
        return view

    def add_external_refunds(self, data: object) -> dict[str, Any]:
        """Record refunds made outside any batch (`sandbox.external`); ValueError if not."""
        partner = self.config.partner
        if isinstance(data, dict) and "partner" in data:
            data = dict(data)
            named = data.pop("partner")
            if not isinstance(named, str) or self.config.partner_config(named) is None:
                raise ValueError("partner is not one the sandbox serves")
            partner = named
        with self.books.lock:
            record = plan_external(
                self.books.ledger,
                data,
                today=self.clock.today(),
                auto_amount=self.config.auto_trade_amount if self.config.auto_trades else None,
                ts=time.time(),
                at=self._at(),
                partner=partner,
            )
            self.books.record_locked(record)
            view = self.books.ledger.trades[record.trade_no].to_json()
        log.info(
            "sandbox.external_refunds.added",
            partner=partner,
            trade_no=record.trade_no,
            count=len(record.batch_nos),
            amount_each=format_amount(record.amount),
        )
        return {
            "partner": partner,
            "trade_no": record.trade_no,
            "batch_nos": list(record.batch_nos),
            "trade": view,
        }

    def settings(self) -> dict[str, Any]:
        """The gateway rules that can change at run time (`GET /_sandbox/settings`).

        The payment password is never shown: `payment_password_default` says
        whether it is still the default one.
        """
        return {
            "refund_limit_mode": self.refund_limit_mode,
            "notify_verify_seconds": self.notify_verify_seconds,
            "payment_password_default": self.payment_password == DEFAULT_PAYMENT_PASSWORD,
            **self.openapi_settings,
        }

    def update_settings(self, data: object) -> dict[str, Any]:
        """Change `refund_limit_mode`, `notify_verify_seconds`, `payment_password` (ConfigError).

        Not journaled, like the faults: a restart goes back to the configured values.
        The payment password applies to every partner without one of its own.
        """
        if not isinstance(data, dict) or not data or set(data) - set(_SETTINGS):
            raise ValueError(
                'expected {"refund_limit_mode": "refuse"|"skip", "notify_verify_seconds": N, '
                '"payment_password": TEXT, "openapi_answer_shapes": "plain"|"vary", '
                '"openapi_coupon_status": "SUCCESS"|"INIT"} (any of the keys)'
            )
        openapi = {
            name: check_openapi_setting(name, data[name])
            for name in OPENAPI_SETTINGS
            if name in data
        }
        mode = check_refund_limit_mode(data.get("refund_limit_mode", self.refund_limit_mode))
        seconds = check_notify_verify_seconds(
            data.get("notify_verify_seconds", self.notify_verify_seconds)
        )
        password = check_payment_password(data.get("payment_password", self.payment_password))
        register_secret(password)
        with self.books.lock:
            self.refund_limit_mode, self.notify_verify_seconds = mode, seconds
            self.payment_password = password
            self.openapi_settings.update(openapi)
        log.info(
            "sandbox.settings.set",
            **openapi,
            refund_limit_mode=mode,
            notify_verify_seconds=seconds,
            payment_password_changed="payment_password" in data,
        )
        return self.settings()

    def set_faults(self, spec: object) -> dict[str, Any]:
        """Replace the faults in force (ConfigError on a bad spec)."""
        self.faults.replace(parse_fault_set(spec))
        snapshot = self.faults.snapshot()
        log.info("sandbox.faults.set", faults=sorted(snapshot["faults"]))
        return snapshot

    def clear_faults(self) -> dict[str, Any]:
        self.faults.clear()
        log.info("sandbox.faults.cleared")
        return self.faults.snapshot()

    def set_clock_offset(self, offset: object) -> dict[str, Any]:
        """Shift the sandbox clock by `offset` seconds (ValueError when not a sane number)."""
        if isinstance(offset, bool) or not isinstance(offset, int | float):
            raise ValueError("offset_seconds must be a number")
        with self.books.lock:
            self.clock.set_offset(float(offset))
            self.books.record_locked(ClockRecord(offset_seconds=float(offset), ts=time.time()))
        log.info("sandbox.clock.set", offset_seconds=float(offset))
        return self.clock_view()

    def clock_view(self) -> dict[str, Any]:
        now = self.clock.now()
        return {
            "offset_seconds": self.clock.offset_seconds,
            "now": now.isoformat(),
            "beijing_date": self.clock.today().isoformat(),
        }

    def summary(self) -> dict[str, Any]:
        with self.books.lock:
            summary = ledger_summary(self.books.ledger)
        summary["faults_fired"] = self.faults.snapshot()["fired_total"]
        queued = self.notifier.queued()
        summary["notifications"]["queued"] = queued
        openapi = openapi_control.openapi_summary(self.openapi)
        summary["openapi"] = openapi
        # Idle: nothing left to deliver and no delivery (e.g. a duplicate) in flight.
        summary["idle"] = (
            summary["notifications"]["pending"] == 0
            and queued == 0
            and openapi["notifications"]["pending"] == 0
            and openapi["notifications"]["queued"] == 0
        )
        return summary

    def openapi_trades(self, data: object) -> dict[str, Any]:
        return openapi_control.create_trades(self.openapi, data, self._today_digits())

    def openapi_envelopes(self, data: object) -> dict[str, Any]:
        return openapi_control.create_envelopes(self.openapi, data, self._today_digits())

    def openapi_ledger(self) -> dict[str, Any]:
        return openapi_control.ledger(self.openapi)

    def _today_digits(self) -> str:
        return self.clock.today().strftime("%Y%m%d")

    def ledger_view(
        self, *, batch_no: str | None, trade_no: str | None, partner: str | None = None
    ) -> dict[str, Any]:
        with self.books.lock:
            return ledger_view(
                self.books.ledger, batch_no=batch_no, trade_no=trade_no, partner=partner
            )

    def info(self) -> dict[str, Any]:
        return {
            "partner": self.config.partner,
            "alipay_public_key_file": str(self._keys.public_path),
            "alipay_public_key": self._keys.public_pem.decode("ascii"),
            "md5": bool(self.config.md5_key),
            "rsa": bool(self.config.merchant_public_key),
            "partners": [
                {"partner": p.partner, "sign_types": list(p.sign_types)}
                for p in self.config.partners
            ],
            "time_factor": self.config.time_factor,
            "process_delay": self.config.process_delay,
            "auto_trades": self.config.auto_trades,
            "auto_trade_amount": format_amount(self.config.auto_trade_amount),
            **self.settings(),
            "openapi": openapi_control.openapi_info(
                {p.app_id: p.partner for p in self.config.partners if p.app_id},
                self._openapi_keys.public_pem,
                str(self._openapi_keys.public_path),
                self.openapi_settings,
            ),
            "state_dir": str(self.config.state_dir),
            "pid": os.getpid(),
        }
