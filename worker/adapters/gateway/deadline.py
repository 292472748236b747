"""An overall deadline for one HTTP request made through requests and urllib3.

The read timeout bounds each socket read only. `Deadline` is a watchdog timer (one
thread per process watches every deadline, `_Watchdog`): when it passes, it shuts down
the connection the request is using, so a blocked read ends at
once (urllib3 then raises as for any connection lost). The request's connections are
the ones the pool hands out in the thread while the deadline is active
(`DeadlineAdapter` installs pools that report them); a connection is forgotten as soon
as it goes back to the pool, so one that another request takes next is never touched.
"""

from __future__ import annotations

import heapq
import itertools
import os
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

    def __enter__(self) -> Deadline:
        Deadline._active.current = self
        _WATCHDOG.watch(self)
        return self

    def __exit__(self, *exc_info: object) -> None:
        with self._lock:
            self._done = True
            self._connections.clear()
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


class _Watchdog:
    """One thread per process that fires every deadline when it passes.

    A timer thread per request (`threading.Timer`) cost the notify receiver about a
    tenth of its time in starting threads (`bench/micro_deadline.py`). A finished
    deadline stays in the heap until its time, then is dropped unfired (`_fire` sees it
    done); at most the requests of one deadline's length are held. After a fork the
    child starts with an empty heap and its own thread (gunicorn forks its workers).
    """

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Deadline]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def watch(self, deadline: Deadline) -> None:
        with self._cond:
            heapq.heappush(self._heap, (deadline.expires, next(self._order), deadline))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="gateway-deadlines", daemon=True
                )
                self._thread.start()
            elif self._heap[0][2] is deadline:
                self._cond.notify()  # earlier than what the thread sleeps for

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._heap:
                    self._cond.wait()
                expires, _, deadline = self._heap[0]
                delay = expires - time.monotonic()
                if delay > 0:
                    self._cond.wait(delay)
                    continue
                heapq.heappop(self._heap)
            deadline._fire()


_WATCHDOG = _Watchdog()
os.register_at_fork(after_in_child=_WATCHDOG._reset)


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
