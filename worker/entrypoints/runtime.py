"""Per-process resources, created on first use from the settings loaded once.

Actors and role loops ask the runtime for the database, the merchants, and the gateway
clients of a merchant; nothing here connects at import time.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import structlog

from worker.adapters.gateway.client import GatewayClient, max_request_seconds
from worker.adapters.postgres.pool import Database
from worker.config.settings import Settings, get_settings
from worker.domain.merchants import MerchantProfile, Merchants
from worker.mapi import Merchant

if TYPE_CHECKING:
    from worker.adapters.gateway.openapi import OpenApiClient
    from worker.adapters.gateway.query import RefundQueryClient

Clock = Callable[[], datetime]


log = structlog.get_logger(__name__)


# How much longer than the gateway client's deadline an in-flight submission is
# trusted: the watchdog's wake-up, parsing, and the settle transaction's lock wait.
SUBMIT_LEASE_MARGIN_SECONDS = 10.0


def submit_lease_for(connect_timeout: float, read_timeout: float) -> float:
    """The in-flight lease for a client with these timeouts: its deadline plus a margin.

    A submission whose lease ran out counts as lost and is re-driven; the lease must
    outlast any request the client can make, or the first attempt's answer would be
    thrown away while it is still coming in.
    """
    return max_request_seconds(connect_timeout, read_timeout) + SUBMIT_LEASE_MARGIN_SECONDS


def system_clock() -> datetime:
    return datetime.now(tz=UTC)


class OffsetClock:
    """The system clock shifted by the number of seconds held in a file (tests only).

    The file is re-read at most once every `refresh_seconds`, so a test can move
    running processes across a Beijing midnight by rewriting it. A missing file
    means no offset; a file that cannot be read or parsed keeps the last good
    offset (logged once per change of content), so a half-written file never
    makes the clock jump to zero.
    """

    def __init__(
        self,
        path: str,
        *,
        refresh_seconds: float = 1.0,
        source: Callable[[], datetime] = system_clock,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self._refresh = refresh_seconds
        self._source = source
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._offset = 0.0
        self._read_at: float | None = None
        self._bad: str | None = None

    @property
    def offset_seconds(self) -> float:
        with self._lock:
            self._maybe_reload()
            return self._offset

    def __call__(self) -> datetime:
        return self._source() + timedelta(seconds=self.offset_seconds)

    def _maybe_reload(self) -> None:
        now = self._monotonic()
        if self._read_at is not None and now - self._read_at < self._refresh:
            return
        self._read_at = now
        try:
            with open(self.path, encoding="utf-8") as handle:
                text = handle.read(64).strip()
        except FileNotFoundError:
            self._offset = 0.0
            return
        except OSError as exc:
            self._complain(f"unreadable: {type(exc).__name__}")
            return
        try:
            offset = float(text)
        except ValueError:
            offset = math.nan
        if not math.isfinite(offset):
            self._complain(f"not a number of seconds: {text[:20]!r}")
            return
        if offset != self._offset:
            log.warning("clock.offset_changed", offset_seconds=offset, path=self.path)
        self._offset, self._bad = offset, None

    def _complain(self, problem: str) -> None:
        if problem != self._bad:
            log.error("clock.offset_file_bad", path=self.path, problem=problem)
        self._bad = problem


def make_clock(settings: Settings) -> Clock:
    """The process's clock: the system clock, shifted only when `CLOCK_OFFSET_FILE` is set."""
    if settings.clock_offset_file is None:
        return system_clock
    return OffsetClock(settings.clock_offset_file)


@dataclass
class Runtime:
    settings: Settings
    clock: Clock = system_clock
    db_pool_size: int = 4
    _db: Database | None = field(default=None, repr=False)
    _gateways: dict[str, GatewayClient] = field(default_factory=dict, repr=False)
    _refund_queries: dict[str, RefundQueryClient] = field(default_factory=dict, repr=False)
    _openapi: OpenApiClient | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def db(self) -> Database:
        with self._lock:
            if self._db is None:
                self._db = Database(
                    self.settings.database_url, max_size=self.db_pool_size, name="refund-worker"
                )
            return self._db

    @property
    def merchants(self) -> Merchants:
        """Every merchant this deployment serves (loaded once with the settings)."""
        return self.settings.merchants()

    def gateway_for(self, merchant: MerchantProfile) -> GatewayClient:
        """The submission client of one merchant (its charset and partner id)."""
        with self._lock:
            client = self._gateways.get(merchant.partner)
            if client is None:
                s = self.settings
                client = self._gateways[merchant.partner] = GatewayClient(
                    s.gateway_url,
                    charset=merchant.charset,
                    partner=merchant.partner,
                    connect_timeout=s.gateway_connect_timeout,
                    read_timeout=s.gateway_read_timeout,
                )
            return client

    def refund_query_for(self, merchant: MerchantProfile) -> RefundQueryClient:
        """The reconciler's `refund_fastpay_query` client of one merchant."""
        with self._lock:
            client = self._refund_queries.get(merchant.partner)
            if client is None:
                from worker.adapters.gateway.query import RefundQueryClient

                s = self.settings
                client = self._refund_queries[merchant.partner] = RefundQueryClient(
                    s.gateway_url,
                    merchant.gateway,
                    connect_timeout=s.gateway_connect_timeout,
                    read_timeout=s.gateway_read_timeout,
                )
            return client

    def query_client(self, partner: str) -> RefundQueryClient | None:
        """The query client of the merchant with this partner id, if it is served."""
        merchant = self.merchants.get(partner)
        return None if merchant is None else self.refund_query_for(merchant)

    @property
    def openapi_client(self) -> OpenApiClient:
        """The client of the OpenAPI gateway (every application shares it)."""
        with self._lock:
            if self._openapi is None:
                from worker.adapters.gateway.openapi import OpenApiClient

                s = self.settings
                self._openapi = OpenApiClient(
                    s.openapi_gateway_url,
                    connect_timeout=s.gateway_connect_timeout,
                    read_timeout=s.gateway_read_timeout,
                )
            return self._openapi

    def merchant(self) -> Merchant:
        """The default merchant's gateway identity."""
        return self.merchants.default.gateway

    @property
    def submit_lease_seconds(self) -> float:
        """How long an in-flight submission is trusted before it counts as lost."""
        s = self.settings
        return submit_lease_for(s.gateway_connect_timeout, s.gateway_read_timeout)

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
            for client in self._refund_queries.values():
                client.close()
            self._refund_queries.clear()
            if self._openapi is not None:
                self._openapi.close()
                self._openapi = None


_current: Runtime | None = None
_current_lock = threading.Lock()


def current() -> Runtime:
    """The process's runtime (built from `get_settings()` on first use)."""
    global _current
    with _current_lock:
        if _current is None:
            settings = get_settings()
            _current = Runtime(settings, clock=make_clock(settings))
        return _current


def install(runtime: Runtime) -> None:
    """Use `runtime` for this process (roles with special needs, tests)."""
    global _current
    with _current_lock:
        _current = runtime
