"""Per-process resources, created on first use from the settings loaded once.

Actors and role loops ask the runtime for the database, the gateway client and the
merchant; nothing here connects at import time.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from worker.db import Database
from worker.gateway import GatewayClient
from worker.mapi import Merchant
from worker.settings import Settings, get_settings

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(tz=UTC)


@dataclass
class Runtime:
    settings: Settings
    clock: Clock = system_clock
    db_pool_size: int = 4
    _db: Database | None = field(default=None, repr=False)
    _gateway: GatewayClient | None = field(default=None, repr=False)
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
    def gateway(self) -> GatewayClient:
        with self._lock:
            if self._gateway is None:
                s = self.settings
                self._gateway = GatewayClient(
                    s.gateway_url,
                    charset=s.input_charset,
                    partner=s.partner,
                    connect_timeout=s.gateway_connect_timeout,
                    read_timeout=s.gateway_read_timeout,
                )
            return self._gateway

    def merchant(self) -> Merchant:
        return self.settings.merchant()

    @property
    def submit_lease_seconds(self) -> float:
        """How long an in-flight submission is trusted before it counts as lost."""
        s = self.settings
        return s.gateway_connect_timeout + s.gateway_read_timeout + 10.0

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


_current: Runtime | None = None
_current_lock = threading.Lock()


def current() -> Runtime:
    """The process's runtime (built from `get_settings()` on first use)."""
    global _current
    with _current_lock:
        if _current is None:
            _current = Runtime(get_settings())
        return _current


def install(runtime: Runtime) -> None:
    """Use `runtime` for this process (roles with special needs, tests)."""
    global _current
    with _current_lock:
        _current = runtime
