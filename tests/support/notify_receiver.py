"""A stand-in for the merchant's notify_url: a threaded HTTP server recording POSTs.

`NotifyReceiver` records every POST (`ReceivedNotify`) and answers what the
test scripts (`success` by default). Moved out of `tests.support.sandbox`,
which re-exports both names.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from worker.mapi import decode_form

__all__ = ["NotifyReceiver", "ReceivedNotify"]


@dataclass(frozen=True)
class ReceivedNotify:
    """One POST the receiver got: raw body, decoded form (None if undecodable), when."""

    body: bytes
    content_type: str
    form: dict[str, str] | None
    at: float


@dataclass
class NotifyReceiver:
    """A threaded HTTP server recording notifications; `answer` decides each reply body.

    `answer(received, index)` returns the body to send (default: `success`);
    `index` counts POSTs so far (0-based). Use as a context manager.
    """

    charset: str = "utf-8"
    answer: Callable[[ReceivedNotify, int], bytes] = lambda _r, _i: b"success"
    received: list[ReceivedNotify] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/alipay/notify"

    def __enter__(self) -> NotifyReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                content_type = self.headers.get("Content-Type", "")
                try:
                    form: dict[str, str] | None = decode_form(body, receiver.charset)
                except Exception:
                    form = None
                got = ReceivedNotify(body, content_type, form, time.monotonic())
                with receiver._lock:
                    index = len(receiver.received)
                    receiver.received.append(got)
                reply = receiver.answer(got, index)
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def snapshot(self) -> list[ReceivedNotify]:
        with self._lock:
            return list(self.received)

    def wait_for(self, count: int, timeout: float = 15.0) -> list[ReceivedNotify]:
        """Wait until at least `count` POSTs arrived; returns them (AssertionError on timeout)."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.snapshot()
            if len(got) >= count:
                return got
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {count} notifications, got {len(got)}")
            time.sleep(0.01)
