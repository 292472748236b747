"""Log setup: structlog for the project, stdlib logging routed through it, one writer.

Every line ends in one `LineWriter` (`worker/observability/writer.py`) installed as
the root logging handler. Records from pika, dramatiq, gunicorn, urllib3 or psycopg
get the same keys as the project's own: `timestamp` (ISO 8601, UTC), `level`,
`logger`, `event`. The project's own events take structlog's native path (a filtering
bound logger, one processor chain, no stdlib `LogRecord`); only other libraries'
records go through the handler's `structlog.stdlib.ProcessorFormatter`.

Both chains end the same way: `format_exc_info`, then `redact`
(`worker/observability/redaction.py`), then the renderer, so nothing reaches the
renderer that the redactor has not seen. JSON lines are rendered by structlog's
`JSONRenderer` with the standard library's `json`; on a terminal, structlog's console
format.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Final, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from worker.observability.redaction import redact
from worker.observability.writer import FLUSH_INTERVAL, LineWriter

__all__ = ["JSON_RENDERER", "NOISY_LOGGERS", "bind_process", "configure_logging"]

# Libraries that log every connection or request at INFO: kept at WARNING
# (or at the configured level when that is higher).
NOISY_LOGGERS: Final = (
    "pika",
    "dramatiq",
    "gunicorn",
    "urllib3",
    "requests",
    "psycopg",
)

_HANDLER_NAME: Final = "refund-worker"
_LEVELS: Final = {
    "DEBUG": logging.DEBUG,
    "INFO": logging.INFO,
    "WARNING": logging.WARNING,
    "WARN": logging.WARNING,
    "ERROR": logging.ERROR,
    "CRITICAL": logging.CRITICAL,
}
_FORMATS: Final = ("auto", "json", "console")


# One JSON object per line: keys in event order, ASCII, `"key": "value"` as the grep for
# one refund's story expects (`devtools/demo.py`). The standard library's json rather than
# orjson, which renders faster but writes `"key":"value"` and raw UTF-8, turns Infinity
# into null and refuses integers beyond 64 bits.
JSON_RENDERER: Final = structlog.processors.JSONRenderer(serializer=json.dumps)

# The writer the project's own lines go to, set by `configure_logging`.
_sink: LineWriter | None = None


class _LineLogger:
    """What structlog's bound loggers write their rendered lines to: the current `LineWriter`."""

    __slots__ = ("name",)

    def __init__(self, name: str | None = None, *_args: object) -> None:
        self.name = name or "root"

    def _line(self, level: int, line: str) -> None:
        sink = _sink
        if sink is None:
            sys.stderr.write(line + "\n")
        else:
            sink.write_line(line, level)

    def debug(self, line: str) -> None:
        self._line(logging.DEBUG, line)

    def info(self, line: str) -> None:
        self._line(logging.INFO, line)

    msg = info

    def warning(self, line: str) -> None:
        self._line(logging.WARNING, line)

    warn = warning

    def error(self, line: str) -> None:
        self._line(logging.ERROR, line)

    exception = error

    def critical(self, line: str) -> None:
        self._line(logging.CRITICAL, line)

    fatal = critical


def _isatty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def _level_number(level: str) -> int:
    try:
        return _LEVELS[level.strip().upper()]
    except KeyError:
        raise ValueError(
            f"unknown log level {level!r} (one of DEBUG, INFO, WARNING, ERROR, CRITICAL)"
        ) from None


_PROCESS_CONTEXT: dict[str, object] = {}


def bind_process(**values: object) -> None:
    """Add fields to every event of this process, in every thread (e.g. `role`)."""
    _PROCESS_CONTEXT.update(values)


def _add_process_context(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    for key, value in _PROCESS_CONTEXT.items():
        event_dict.setdefault(key, value)
    return event_dict


def configure_logging(
    level: str = "INFO",
    fmt: str = "auto",
    stream: TextIO | None = None,
    *,
    buffered: bool = False,
    flush_interval: float = FLUSH_INTERVAL,
) -> None:
    """Send structlog and stdlib logging to `stream` (default: standard output).

    `fmt` is `json` (one JSON object per line), `console` (human-readable) or
    `auto`: console on a terminal, JSON otherwise. `buffered` lets lines wait up
    to `flush_interval` seconds to be written together (see `LineWriter`); the
    roles use it, tests and tools write each line at once. Calling it again
    replaces the previous setup (one handler, never two; the old one is flushed),
    so it is safe in tests and in processes that fork roles. The level applies to
    structlog loggers when they are first used (they are cached), so configure
    before logging.
    """
    global _sink
    threshold = _level_number(level)
    if fmt not in _FORMATS:
        raise ValueError(f"unknown log format {fmt!r} (one of auto, json, console)")
    out = sys.stdout if stream is None else stream
    tty = _isatty(out)
    renderer: Processor
    if fmt == "console" or (fmt == "auto" and tty):
        renderer = structlog.dev.ConsoleRenderer(colors=tty)
    else:
        renderer = JSON_RENDERER

    timestamper = structlog.processors.TimeStamper(fmt="iso", utc=True)
    foreign_chain: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        _add_process_context,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        timestamper,
    ]
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=foreign_chain,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            redact,
            renderer,
        ],
    )
    handler = LineWriter(out, buffered=buffered, flush_interval=flush_interval)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(formatter)

    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(threshold)
    _sink = handler
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(max(threshold, logging.WARNING))
    logging.captureWarnings(True)
    # Other libraries' records: their renderers show none of the caller, thread or process
    # fields the stdlib gathers for each record (the logging HOWTO's "Optimization"
    # switches), so skip gathering them.
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging._srcfile = None  # no stack walk for the caller's file and line

    # The project's own events: structlog's native path. The level is checked by the
    # bound logger's class (a method below it does nothing), the chain runs once, and the
    # rendered line goes straight to the handler above, in order with the stdlib records.
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            _add_process_context,
            structlog.processors.add_log_level,
            structlog.stdlib.add_logger_name,
            timestamper,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            redact,
            renderer,
        ],
        logger_factory=_LineLogger,
        wrapper_class=structlog.make_filtering_bound_logger(threshold),
        cache_logger_on_first_use=True,
    )
