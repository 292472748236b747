"""An overall deadline for one HTTP request made through requests and urllib3.

The read timeout bounds each socket read only. `Deadline` is a watchdog timer: when it
passes, it shuts down the connection the request is using, so a blocked read ends at
once (urllib3 then raises as for any connection lost). The request's connections are
the ones the pool hands out in the thread while the deadline is active
(`DeadlineAdapter` installs pools that report them); a connection is forgotten as soon
as it goes back to the pool, so one that another request takes next is never touched.
"""

from __future__ import annotations

import socket
import threading
import time
from contextlib import suppress
from http.cookiejar import DefaultCookiePolicy
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.poolmanager import PoolManager, ProxyManager
from urllib3.util.retry import Retry

__all__ = ["Deadline", "DeadlineAdapter"]


class Deadline:
    """Shuts down the connection a request uses once its time is up (a watchdog timer).

    The connections are the ones the pool hands out while this deadline is active in
    the thread (`_DeadlinePool`); one is forgotten as soon as it goes back to the pool,
    so a connection that another request uses next is never touched.
    """

    _active = threading.local()

    def __init__(self, seconds: float) -> None:
        self.expires = time.monotonic() + seconds
        self.fired = False
        self._lock = threading.Lock()
        self._connections: list[HTTPConnection] = []
        self._done = False
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True

    def __enter__(self) -> Deadline:
        Deadline._active.current = self
        self._timer.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        with self._lock:
            self._done = True
            self._connections.clear()
        self._timer.cancel()
        Deadline._active.current = None

    def passed(self) -> bool:
        return self.fired or time.monotonic() >= self.expires

    @classmethod
    def attach(cls, conn: object) -> None:
        deadline = getattr(cls._active, "current", None)
        if isinstance(deadline, Deadline) and isinstance(conn, HTTPConnection):
            with deadline._lock:
                if not deadline._done:
                    deadline._connections.append(conn)

    @classmethod
    def detach(cls, conn: object) -> None:
        deadline = getattr(cls._active, "current", None)
        if isinstance(deadline, Deadline):
            with deadline._lock:
                deadline._connections = [c for c in deadline._connections if c is not conn]

    def _fire(self) -> None:
        with self._lock:
            if self._done:
                return
            self.fired = True
            for conn in self._connections:
                sock = conn.sock
                if sock is not None:
                    # The plain socket's shutdown, also under TLS: the blocked read sees
                    # the end of the stream and raises inside urllib3 as usual.
                    with suppress(OSError):
                        socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _DeadlinePool(HTTPConnectionPool):
    def _get_conn(self, timeout: float | None = None) -> Any:
        conn = super()._get_conn(timeout)
        Deadline.attach(conn)
        return conn

    def _put_conn(self, conn: Any) -> None:
        Deadline.detach(conn)  # before another request can take it
        super()._put_conn(conn)


class _DeadlineHTTPSPool(HTTPSConnectionPool):
    def _get_conn(self, timeout: float | None = None) -> Any:
        conn = super()._get_conn(timeout)
        Deadline.attach(conn)
        return conn

    def _put_conn(self, conn: Any) -> None:
        Deadline.detach(conn)
        super()._put_conn(conn)


_POOL_CLASSES = {"http": _DeadlinePool, "https": _DeadlineHTTPSPool}


class DeadlineAdapter(HTTPAdapter):
    """An adapter whose pools (direct or through an HTTP proxy) report to `Deadline`."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOL_CLASSES

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> PoolManager:
        manager: PoolManager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if isinstance(manager, ProxyManager):  # SOCKS pools keep their own classes
            manager.pool_classes_by_scheme = _POOL_CLASSES
        return manager


def gateway_session(pool_size: int) -> requests.Session:
    """A pooled session for the gateway: no cookies, no retries, no redirects, deadlines on.

    The gateway has no session state, and a shared cookie jar is shared mutable state
    between threads; whether to resend a request that may have been received is the
    caller's decision, never the transport's. `pool_size` should be at least the number
    of threads sharing the session.
    """
    session = requests.Session()
    session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
    adapter = DeadlineAdapter(
        pool_connections=1,
        pool_maxsize=pool_size,
        max_retries=Retry(total=0, read=False, redirect=False),
    )
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session
