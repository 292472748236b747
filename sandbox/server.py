"""Serving the sandbox: gunicorn, one `gthread` worker, run programmatically.

Why gunicorn: it is already the project's WSGI server (the notify receiver
runs on it), it is well kept, and its threaded worker gives what the
sandbox needs: one process (the books live in memory), a pool of request
threads so a hanging answer does not block the others, HTTP/1.1 keep-alive
for the worker's pooled sessions, access to the raw client socket (for the
`reset_after_accept` fault), and graceful shutdown on SIGTERM.

The service (books, journal replay, sender threads) is built when the
worker process loads the application, i.e. after the fork: threads do not
survive a fork. If the worker ever dies, gunicorn starts a new one, which
replays the journal and carries on. gunicorn's own messages go through the
project's logging (`worker.observability.gunicorn`).
"""

from __future__ import annotations

from typing import Any

from sandbox.app import SandboxApp
from sandbox.config import SandboxConfig
from sandbox.keys import AlipayKeys
from sandbox.service import SandboxService
from worker.observability.gunicorn import GunicornServer

__all__ = ["SandboxServer"]


class SandboxServer:
    """Serves one sandbox with gunicorn until gunicorn exits."""

    def __init__(self, config: SandboxConfig, keys: AlipayKeys) -> None:
        self._config = config
        self._keys = keys
        self._service: SandboxService | None = None

    def run(self) -> None:
        """Serve (SystemExit with gunicorn's exit status when it stops)."""
        GunicornServer(self._load, self._options()).run()

    def _options(self) -> dict[str, Any]:
        return {
            "bind": [self._config.bind],
            "workers": 1,
            "worker_class": "gthread",
            "threads": self._config.threads,
            "worker_connections": 1000,
            "keepalive": 30,
            "timeout": 120,
            "graceful_timeout": 5,
            "limit_request_line": 0,  # GET requests may carry a whole batch (up to 1 MiB)
            "accesslog": None,
            # "error": gunicorn's warnings quote malformed request lines, and a
            # request line (a GET to the gateway) can carry a signature.
            "loglevel": "error",
            "control_socket_disable": True,
            "proc_name": "refund-worker-sandbox",
            "worker_exit": self._worker_exit,
        }

    def _load(self) -> SandboxApp:
        service = SandboxService(self._config, self._keys)
        service.start()
        self._service = service
        return SandboxApp(service)

    def _worker_exit(self, _server: Any, _worker: Any) -> None:
        if self._service is not None:
            self._service.stop()
