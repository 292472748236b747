"""A small typed client for the sandbox's control API (tests, the demo, the benchmarks).

    client = SandboxClient("http://127.0.0.1:8090")
    client.create_trade("2016081821001004270231872174", "100.00")
    client.set_faults({"notify_lost": {"count": 1}})
    client.set_refund_limit_mode("skip")
    client.add_external_refunds("2016081821001004270231872174", 3, "1.00")
    ...
    client.wait_idle(timeout=30)
    assert client.summary()["double_executed"] == []

Every method raises `SandboxError` when the sandbox answers with an error
(the message is the sandbox's own) and lets requests' exceptions through
when it cannot be reached.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

import requests

__all__ = ["SandboxClient", "SandboxError"]


class SandboxError(Exception):
    """The sandbox refused a control request (status and its error message)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"sandbox answered {status}: {message}")
        self.status = status
        self.message = message


class SandboxClient:
    """Control-API client for one sandbox at `base_url` (e.g. `http://127.0.0.1:8090`)."""

    def __init__(self, base_url: str, *, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._timeout = timeout
        self._session = requests.Session()

    @property
    def gateway_url(self) -> str:
        """The gateway endpoint the worker should use (`ALIPAY_GATEWAY_URL`)."""
        return f"{self.base_url}/gateway.do"

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> SandboxClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- reading ---------------------------------------------------------------

    def health(self) -> bool:
        """True when the sandbox answers its health check."""
        try:
            return bool(self._call("GET", "/_sandbox/health").get("status") == "ok")
        except (requests.RequestException, SandboxError):
            return False

    def info(self) -> dict[str, Any]:
        """Partner, accepted sign types, Alipay public key (PEM and path), timing settings.

        `partners` lists every partner served (`{"partner", "sign_types"}`);
        the top-level `partner`, `md5` and `rsa` are the first one's.
        """
        return self._call("GET", "/_sandbox/info")

    def partners(self) -> list[str]:
        """The ids of the partners the sandbox serves, the default (first) one first."""
        return [entry["partner"] for entry in self.info()["partners"]]

    def ledger(
        self,
        *,
        batch_no: str | None = None,
        trade_no: str | None = None,
        partner: str | None = None,
    ) -> dict[str, Any]:
        """The books: `batches`, `refused`, `trades`, `notifications` (optionally narrowed)."""
        wanted = (("batch_no", batch_no), ("trade_no", trade_no), ("partner", partner))
        params = {k: v for k, v in wanted if v}
        return self._call("GET", "/_sandbox/ledger", params=params)

    def summary(self) -> dict[str, Any]:
        """Counts plus `double_executed` and `over_refunded` (both empty when all is well)."""
        return self._call("GET", "/_sandbox/summary")

    def faults(self) -> dict[str, Any]:
        """The faults in force, how often each fired, and the seed."""
        return self._call("GET", "/_sandbox/faults")

    def clock(self) -> dict[str, Any]:
        return self._call("GET", "/_sandbox/clock")

    def settings(self) -> dict[str, Any]:
        """The run-time gateway rules: `refund_limit_mode`, `notify_verify_seconds`."""
        return self._call("GET", "/_sandbox/settings")

    # -- changing --------------------------------------------------------------

    def create_trade(
        self, trade_no: str, amount: str | Decimal, status: str = "paid"
    ) -> dict[str, Any]:
        """Create (or change) a paid trade; `status` is paid, closed or finished."""
        body = {"trade_no": trade_no, "amount": _amount(amount), "status": status}
        return self._call("POST", "/_sandbox/trades", json=body)

    def create_trades(
        self, trades: Iterable[tuple[str, str | Decimal] | tuple[str, str | Decimal, str]]
    ) -> list[dict[str, Any]]:
        """Create many trades in one request: (trade_no, amount[, status]) tuples."""
        body = {
            "trades": [
                {
                    "trade_no": t[0],
                    "amount": _amount(t[1]),
                    "status": t[2] if len(t) > 2 else "paid",
                }
                for t in trades
            ]
        }
        created: list[dict[str, Any]] = self._call("POST", "/_sandbox/trades", json=body)["trades"]
        return created

    def add_external_refunds(
        self,
        trade_no: str,
        count: int,
        amount_each: str | Decimal,
        *,
        reason: str | None = None,
        partner: str | None = None,
    ) -> dict[str, Any]:
        """Record `count` refunds of the trade made outside any batch (as the merchant console).

        Each gets its own sandbox-made batch number; they count toward the
        99-refund limit and the paid amount, and the refund query shows them
        (to `partner`, the default partner when not given).
        Returns `{"partner", "trade_no", "batch_nos", "trade"}`.
        """
        body: dict[str, Any] = {
            "trade_no": trade_no,
            "count": count,
            "amount_each": _amount(amount_each),
        }
        if reason is not None:
            body["reason"] = reason
        if partner is not None:
            body["partner"] = partner
        return self._call("POST", "/_sandbox/external_refunds", json=body)

    def update_settings(
        self,
        *,
        refund_limit_mode: str | None = None,
        notify_verify_seconds: float | None = None,
        payment_password: str | None = None,
        openapi_answer_shapes: str | None = None,
        openapi_coupon_status: str | None = None,
    ) -> dict[str, Any]:
        """Change the run-time gateway rules given (not kept across a sandbox restart)."""
        body: dict[str, Any] = {}
        if openapi_answer_shapes is not None:
            body["openapi_answer_shapes"] = openapi_answer_shapes
        if openapi_coupon_status is not None:
            body["openapi_coupon_status"] = openapi_coupon_status
        if refund_limit_mode is not None:
            body["refund_limit_mode"] = refund_limit_mode
        if notify_verify_seconds is not None:
            body["notify_verify_seconds"] = notify_verify_seconds
        if payment_password is not None:
            body["payment_password"] = payment_password
        return self._call("PUT", "/_sandbox/settings", json=body)

    def set_refund_limit_mode(self, mode: str) -> dict[str, Any]:
        """`refuse` (the 100th refund of a trade fails) or `skip` (it is left out silently)."""
        return self.update_settings(refund_limit_mode=mode)

    # -- OpenAPI ---------------------------------------------------------------

    @property
    def openapi_gateway_url(self) -> str:
        """The OpenAPI gateway endpoint (`POST`, form body)."""
        return f"{self.base_url}/openapi/gateway.do"

    def create_openapi_trade(
        self,
        amount: str | Decimal,
        *,
        trade_no: str | None = None,
        out_trade_no: str | None = None,
        status: str = "paid",
    ) -> dict[str, Any]:
        """Create or change an OpenAPI trade (either number may be left out, not both)."""
        body: dict[str, Any] = {"amount": _amount(amount), "status": status}
        if trade_no is not None:
            body["trade_no"] = trade_no
        if out_trade_no is not None:
            body["out_trade_no"] = out_trade_no
        return self._call("POST", "/_sandbox/openapi/trades", json=body)

    def create_envelope(
        self, amount: str | Decimal, *, auth_no: str | None = None, status: str = "open"
    ) -> dict[str, Any]:
        """Create or change a red envelope (a new `auth_no` when None); answers it."""
        body: dict[str, Any] = {"amount": _amount(amount), "status": status}
        if auth_no is not None:
            body["auth_no"] = auth_no
        return self._call("POST", "/_sandbox/openapi/envelopes", json=body)

    def openapi_ledger(self) -> dict[str, Any]:
        """The OpenAPI books: trades, envelopes, trade and coupon refunds, notifications."""
        return self._call("GET", "/_sandbox/openapi/ledger")

    def set_faults(self, faults: Mapping[str, Any]) -> dict[str, Any]:
        """Replace the faults in force (see `sandbox.faults` for the names)."""
        return self._call("PUT", "/_sandbox/faults", json=dict(faults))

    def clear_faults(self) -> dict[str, Any]:
        return self._call("DELETE", "/_sandbox/faults")

    def set_clock_offset(self, offset_seconds: float) -> dict[str, Any]:
        """Shift the sandbox's clock (refund_date and batch_no checks, notify_time)."""
        return self._call("PUT", "/_sandbox/clock", json={"offset_seconds": offset_seconds})

    # -- waiting ---------------------------------------------------------------

    def wait_idle(self, timeout: float = 30.0, *, poll: float = 0.05) -> dict[str, Any]:
        """Wait until every notification is acknowledged or given up; returns the summary.

        Also waits for deliveries still in flight (a duplicate after the
        acknowledged original), so the ledger read afterwards is complete.
        Raises TimeoutError (with the pending count) when that takes longer than `timeout`.
        """
        deadline = time.monotonic() + timeout
        while True:
            summary = self.summary()
            if summary["idle"]:
                return summary
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"sandbox not idle after {timeout}s: "
                    f"{summary['notifications']['pending']} notification(s) pending"
                )
            time.sleep(poll)

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Wait until the sandbox answers its health check (TimeoutError otherwise)."""
        deadline = time.monotonic() + timeout
        while not self.health():
            if time.monotonic() >= deadline:
                raise TimeoutError(f"sandbox at {self.base_url} not ready after {timeout}s")
            time.sleep(0.05)

    # -- plumbing ----------------------------------------------------------------

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = self._session.request(
            method, self.base_url + path, timeout=self._timeout, **kwargs
        )
        try:
            data = response.json()
        except ValueError:
            data = None
        if response.status_code != 200:
            message = data.get("error") if isinstance(data, dict) else response.text[:200]
            raise SandboxError(response.status_code, str(message))
        if not isinstance(data, dict):
            raise SandboxError(response.status_code, "answer is not a JSON object")
        return data


def _amount(amount: str | Decimal) -> str:
    return f"{amount:.2f}" if isinstance(amount, Decimal) else amount
