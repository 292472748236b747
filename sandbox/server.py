"""Serving the sandbox: gunicorn, one `gthread` worker, run programmatically.

Why gunicorn: it is already the project's WSGI server (the notify receiver
runs on it), it is well kept, and its threaded worker gives what the
sandbox needs: one process (the books live in memory), a pool of request
threads so a hanging answer does not block the others, HTTP/1.1 keep-alive
for the worker's pooled sessions, access to the raw client socket (for the
`reset_after_accept` fault), and graceful shutdown on SIGTERM.

The service (books, journal replay, sender threads) is built in `load()`,
i.e. inside the worker process after the fork: threads do not survive a
fork. If the worker ever dies, gunicorn starts a new one, which replays the
journal and carries on.
"""

from __future__ import annotations

import gc
from typing import Any, Final

from gunicorn.app.base import BaseApplication
from gunicorn.glogging import Logger

from sandbox.app import SandboxApp
from sandbox.config import SandboxConfig
from sandbox.keys import AlipayKeys
from sandbox.service import SandboxService

__all__ = ["SandboxServer"]

_GC_THRESHOLD: Final = 10_000


class _ProjectLogger(Logger):  # type: ignore[misc]  # gunicorn is untyped
    """gunicorn's own messages, written through the project's logging setup.

    gunicorn normally gives its loggers handlers with its own text format;
    here they get none and propagate to the root handler that
    `worker.observability.logging.configure_logging` installed, so every line of the
    sandbox is the same JSON (and goes through the same redaction).
    """

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            for handler in list(log.handlers):
                log.removeHandler(handler)
            log.propagate = True


class SandboxServer(BaseApplication):  # type: ignore[misc]  # gunicorn is untyped
    """A gunicorn application serving one sandbox."""

    def __init__(self, config: SandboxConfig, keys: AlipayKeys) -> None:
        self._config = config
        self._keys = keys
        self._service: SandboxService | None = None
        super().__init__()

    def load_config(self) -> None:
        settings: dict[str, Any] = {
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
            "logger_class": _ProjectLogger,
            "control_socket_disable": True,
            "proc_name": "refund-worker-sandbox",
            "worker_exit": self._worker_exit,
        }
        for key, value in settings.items():
            self.cfg.set(key, value)

    def load(self) -> SandboxApp:
        # Every accepted batch allocates thousands of container objects (item
        # tuples, executions) that stay in the books: with the default
        # threshold (700) the cyclic collector runs several times per batch and
        # keeps re-scanning the surviving ones. Collecting 15 times less often
        # takes a tenth of the CPU of a batch off (the books hold no cycles).
        gc.set_threshold(_GC_THRESHOLD)
        service = SandboxService(self._config, self._keys)
        service.start()
        self._service = service
        return SandboxApp(service)

    def _worker_exit(self, _server: Any, _worker: Any) -> None:
        if self._service is not None:
            self._service.stop()
