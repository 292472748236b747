"""Serving a WSGI application with gunicorn, its own messages written as the project's logs.

`GunicornServer` runs gunicorn programmatically: settings as a mapping, and
a `load` callable that builds the application inside each worker process,
after the fork (threads, pools and sockets do not survive a fork). Settings
this gunicorn does not know, and settings given as None, are left at
gunicorn's defaults, so one list of options serves every supported gunicorn.

`ProjectLogger` is the logger class it uses: gunicorn normally gives its
error and access loggers handlers with its own text format; here they get
none and propagate to the root handler the project's logging setup installed
(`worker.observability.logging.configure_logging`), so every line of the
process is the same JSON and goes through the same redaction.

The notify-server (`refund-worker notify-server`) and the sandbox gateway
(`refund-worker sandbox`) both serve this way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any
from wsgiref.types import WSGIApplication

from gunicorn.app.base import BaseApplication
from gunicorn.glogging import Logger

__all__ = ["GunicornServer", "ProjectLogger"]


class ProjectLogger(Logger):  # type: ignore[misc]  # gunicorn is untyped
    """gunicorn's loggers without handlers of their own (see the module docstring)."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for stdlib_logger in (self.error_log, self.access_log):
            for handler in list(stdlib_logger.handlers):
                stdlib_logger.removeHandler(handler)
            stdlib_logger.propagate = True


class GunicornServer(BaseApplication):  # type: ignore[misc]  # gunicorn is untyped
    """A gunicorn application: `options` are its settings, `load` builds the WSGI app per worker.

    `logger_class` defaults to `ProjectLogger`. `run()` serves until gunicorn
    exits (it raises SystemExit with gunicorn's exit status).
    """

    def __init__(self, load: Callable[[], WSGIApplication], options: Mapping[str, Any]) -> None:
        self._load = load
        self._options = {"logger_class": ProjectLogger, **options}
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            if key in self.cfg.settings and value is not None:
                self.cfg.set(key, value)

    def load(self) -> WSGIApplication:
        return self._load()
