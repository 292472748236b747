"""Log setup: structlog for the project, stdlib logging routed through it, secrets redacted.

Every line goes through one `logging.Handler` on the root logger whose
`structlog.stdlib.ProcessorFormatter` renders JSON lines (or, on a terminal,
structlog's console format). Records from pika, dramatiq, gunicorn, urllib3 or
psycopg get the same keys as the project's own: `timestamp` (ISO 8601, UTC),
`level`, `logger`, `event`.

The last processor before rendering is `redact`. It is the safety net behind
the rule "never log a key, a signature or a signed payload":

* a value whose key names a secret (`sign`, `md5_key`, `password`,
  `authorization`, ... but not `sign_type`, `routing_key` or `refund_id`) is
  replaced by ``[redacted]``, at any depth of nested dicts;
* in every string (messages, nested values, rendered exceptions) a PEM block or
  a value given to `register_secret` is replaced by ``[redacted]``.

Settings register every secret they load, so a key that leaks into an
exception message or a library's log line is still caught.

Cost. Every refund leaves a line in intake, packer and worker, so a line's cost
counts. The project's own events take structlog's native path (a filtering
bound logger, one processor chain, no stdlib `LogRecord`); only other
libraries' records go through the stdlib handler. Both end in one
`LineWriter`, which writes each line at once by default; the roles ask it to
buffer (`configure_logging(..., buffered=True)`): lines are written together at
most `FLUSH_INTERVAL` seconds after the first of them, at once for WARNING and
above, when `MAX_PENDING_BYTES` are waiting, before a fork and at exit. The
trade-off: a process killed with SIGKILL (or a crash of the interpreter itself)
loses the lines of its last `FLUSH_INTERVAL` seconds at most. The ledger, not
the log, is the record of what happened to a refund.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import enum
import functools
import json
import logging
import os
import re
import sys
import threading
import traceback
import uuid
import weakref
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any, Final, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

__all__ = [
    "FLUSH_INTERVAL",
    "MAX_PENDING_BYTES",
    "NOISY_LOGGERS",
    "REDACTED",
    "LineWriter",
    "configure_logging",
    "flush_logs",
    "is_secret_key",
    "redact",
    "register_secret",
]

REDACTED: Final = "[redacted]"

# Values that describe a secret without being one (see `Settings.describe`):
# they may stand under a secret-looking key.
_SAFE_MARKERS: Final = frozenset({REDACTED, "[set]", "[unset]"})

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

# Shortest value `register_secret` accepts: shorter strings (a 5-character
# password such as the demo's "guest") would blank out ordinary words.
MIN_SECRET_LENGTH: Final = 6
# Lines of a multi-line secret (a PEM body) at least this long are registered
# on their own too, so a fragment of a key is caught as well.
_MIN_SECRET_LINE: Final = 16
# Nesting below this depth is rendered with repr() and scanned as one string.
_MAX_DEPTH: Final = 16

# --------------------------------------------------------------------------
# Which key names hold secrets
# --------------------------------------------------------------------------

# A key name containing one of these, in any spelling, is a secret.
_SECRET_SUBSTRINGS: Final = (
    "secret",
    "password",
    "passwd",
    "passphrase",
    "authorization",
    "credential",
    "privatekey",
    "apikey",
    "md5key",
)
# A key whose words include one of these is a secret (`private_key_pem`).
_SECRET_ANY_WORD: Final = frozenset({"private", "cookie"})
# A key whose *last* word is one of these is a secret: `sign` and `rsa_sign`
# are, `sign_type` is not; `access_token` is, `token_count` is not.
_SECRET_LAST_WORD: Final = frozenset(
    {"key", "sign", "signature", "sig", "token", "pwd", "pem", "auth"}
)
# `<qualifier>_key` names that identify something rather than hold a key.
# Any other `*_key` (`md5_key`, `api_key`, `sign_key`, an unknown one) is redacted.
_BENIGN_KEY_QUALIFIERS: Final = frozenset(
    {
        "routing",
        "idempotency",
        "dedup",
        "dedupe",
        "cache",
        "partition",
        "primary",
        "foreign",
        "unique",
        "sort",
        "lock",
        "advisory",
        "inbox",
        "outbox",
        "message",
        "group",
        "correlation",
        "lookup",
        "object",
        "public",
        "batch",
        "refund",
        "trade",
        "order",
        "event",
        "notify",
        "queue",
        "exchange",
        "row",
        "table",
        "column",
        "index",
        "shard",
        "bucket",
        "state",
        "metric",
        "label",
        "config",
        "setting",
    }
)
_CAMEL: Final = re.compile(r"([a-z0-9])([A-Z])")
_NON_WORD: Final = re.compile(r"[^a-z0-9]+")


@functools.lru_cache(maxsize=4096)
def is_secret_key(name: str) -> bool:
    """Whether a value logged under `name` must be hidden.

    Names are split into lowercase words (`privateKey`, `private-key` and
    `private_key` are the same). The rule is precise on purpose: ids, types and
    routing keys stay readable, anything that can hold a key, a password, a
    token or a signature does not.
    """
    words = [w for w in _NON_WORD.split(_CAMEL.sub(r"\1_\2", name).lower()) if w]
    if not words:
        return False
    joined = "".join(words)
    if any(part in joined for part in _SECRET_SUBSTRINGS):
        return True
    if _SECRET_ANY_WORD.intersection(words):
        return True
    last = words[-1]
    if last not in _SECRET_LAST_WORD:
        return False
    if last == "key" and len(words) > 1:
        return words[-2] not in _BENIGN_KEY_QUALIFIERS
    return True


# --------------------------------------------------------------------------
# Which values are secrets
# --------------------------------------------------------------------------

_PEM_BLOCK: Final = re.compile(
    r"-----BEGIN [A-Z0-9 ]+-----.*?(?:-----END [A-Z0-9 ]+-----|\Z)", re.DOTALL
)
_lock = threading.Lock()
_secrets: set[str] = set()
_secret_pattern: re.Pattern[str] | None = None


def register_secret(value: str) -> None:
    """Hide `value` wherever it appears in a logged string from now on.

    Values shorter than 6 characters are ignored: they would match ordinary
    text and no real key is that short. Each line of a multi-line secret of at
    least 16 characters is registered too.
    """
    global _secret_pattern
    if not isinstance(value, str) or len(value) < MIN_SECRET_LENGTH:
        return
    candidates = {value}
    if "\n" in value:
        candidates.update(
            line.strip() for line in value.splitlines() if len(line.strip()) >= _MIN_SECRET_LINE
        )
    with _lock:
        if candidates <= _secrets:
            return
        _secrets.update(candidates)
        ordered = sorted(_secrets, key=len, reverse=True)
        _secret_pattern = re.compile("|".join(re.escape(s) for s in ordered))


def _forget_secrets() -> None:
    """Drop every registered secret (for tests only)."""
    global _secret_pattern
    with _lock:
        _secrets.clear()
        _secret_pattern = None


def _scrub_text(text: str) -> str:
    if "-----BEGIN " in text:
        text = _PEM_BLOCK.sub(REDACTED, text)
    pattern = _secret_pattern
    if pattern is not None:
        text = pattern.sub(REDACTED, text)
    return text


def _plain(value: object) -> str:
    """The text a renderer would show for a value that is not JSON-native."""
    if isinstance(value, _dt.datetime | _dt.date | _dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal | uuid.UUID | PurePath):
        return str(value)
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, bytes | bytearray):
        return value.decode("utf-8", "backslashreplace")
    return repr(value)


def _scrub(key: object, value: Any, depth: int) -> Any:
    if isinstance(key, str) and is_secret_key(key):
        if value is None or (isinstance(value, str) and value in _SAFE_MARKERS):
            return value
        return REDACTED
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return _scrub_text(value)
    if depth >= _MAX_DEPTH:
        return _scrub_text(repr(value))
    if isinstance(value, Mapping):
        return {
            (_scrub_text(k) if isinstance(k, str) else k): _scrub(k, v, depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [_scrub(None, item, depth + 1) for item in value]
    return _scrub_text(_plain(value))


def _flat_texts(event_dict: EventDict) -> list[str] | None:
    """The string values of an event made only of strings, numbers, booleans and None under
    ordinary key names; None for any other event (it takes the full walk)."""
    texts: list[str] = []
    for key, value in event_dict.items():
        if not isinstance(key, str) or is_secret_key(key):
            return None
        if isinstance(value, str):
            texts.append(value)
        elif value is not None and not isinstance(value, bool | int | float):
            return None
    return texts


def redact(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """structlog processor: hide secrets by key name and by value (see the module doc).

    Values that are not JSON-native (objects, exceptions, bytes) are turned into
    their text first, so a secret inside an object's repr is caught too.

    Most events (a refund's `refund.received`) hold a few plain values under ordinary
    names: their strings are scanned together, in one pass, and the event is kept as
    it is when none holds a PEM block or a registered secret. A secret inside any one
    string is inside the joined text too, so the shortcut never lets one through; a
    match, or any other event, takes the value-by-value walk.
    """
    texts = _flat_texts(event_dict)
    if texts is not None:
        joined = "\n".join(texts)
        pattern = _secret_pattern
        if "-----BEGIN " not in joined and (pattern is None or pattern.search(joined) is None):
            return event_dict
    return {key: _scrub(key, value, 0) for key, value in event_dict.items()}


def _json_fallback(value: object) -> str:
    return repr(value)


# After `redact` every value is JSON-native; one encoder, built once, renders the line
# exactly as `structlog.processors.JSONRenderer()` would, without building one per call.
_JSON_ENCODER: Final = json.JSONEncoder(default=_json_fallback)


def render_json(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> str:
    """structlog renderer: the event as one JSON object (ASCII, keys in event order)."""
    return _JSON_ENCODER.encode(event_dict)


# --------------------------------------------------------------------------
# Writing lines
# --------------------------------------------------------------------------

# A buffered line waits at most this long (seconds) before it is written.
FLUSH_INTERVAL: Final = 0.05
# Lines waiting beyond this many characters are written at once.
MAX_PENDING_BYTES: Final = 256 * 1024
# Lines are written in pieces of whole lines of at most this many bytes (PIPE_BUF on
# Linux): a write that small to a pipe is never split or interleaved with another
# process's, so processes sharing one standard output (gunicorn's master and workers,
# `refund-worker all`) never cut into each other's lines.
ATOMIC_WRITE_BYTES: Final = 4096


def _pieces(lines: list[str]) -> list[str]:
    """`lines` joined into as few texts of at most ATOMIC_WRITE_BYTES as whole lines allow.

    A longer line is a piece of its own, as it was when every line was written alone.
    A non-ASCII line is counted at 4 bytes a character (UTF-8's most).
    """
    pieces: list[str] = []
    piece: list[str] = []
    size = 0
    for line in lines:
        n = len(line) if line.isascii() else 4 * len(line)
        if piece and size + n > ATOMIC_WRITE_BYTES:
            pieces.append("".join(piece))
            piece, size = [], 0
        piece.append(line)
        size += n
    if piece:
        pieces.append("".join(piece))
    return pieces


_writers: weakref.WeakSet[LineWriter] = weakref.WeakSet()


class LineWriter(logging.Handler):
    """The root handler, and the sink of the project's own (structlog) lines.

    Unbuffered, every line is written and flushed as it comes (the stdlib
    `StreamHandler` behaviour). Buffered, lines are kept in memory and written
    with one `write` each time a background thread wakes (at most
    `flush_interval` seconds after the first waiting line), at once for a line
    at WARNING or above (and everything before it, in order), when more than
    `max_pending` characters wait, before the process forks, on `flush()` and
    at exit (`logging.shutdown`, which runs at interpreter exit, flushes every
    handler).

    Records are formatted outside any lock, so threads logging at once only
    contend for a list append.
    """

    def __init__(
        self,
        stream: TextIO,
        *,
        buffered: bool = False,
        flush_interval: float = FLUSH_INTERVAL,
        max_pending: int = MAX_PENDING_BYTES,
    ) -> None:
        super().__init__()
        self.stream = stream
        self.buffered = buffered
        self.flush_interval = flush_interval
        self.max_pending = max_pending
        self._reset()
        _writers.add(self)

    def _reset(self) -> None:
        # Reentrant: a signal handler may log on a thread that is inside these sections.
        self._pending_lock = threading.RLock()
        self._write_lock = threading.RLock()
        self._pending: list[str] = []
        self._pending_size = 0
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._flusher: threading.Thread | None = None
        self._closed = False

    # -- stdlib records (other libraries) ------------------------------------------

    def handle(self, record: logging.LogRecord) -> bool:
        """Filter and emit without holding the handler's lock while formatting."""
        rv = self.filter(record)
        if rv:
            self.emit(record)
        return rv

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return
        self.write_line(line, record.levelno)

    # -- lines -----------------------------------------------------------------------

    def write_line(self, line: str, level: int) -> None:
        """Write one rendered line (a newline is added), now or with the next flush."""
        if not self.buffered or self._closed:
            with self._write_lock:
                self._write(line + "\n")
            return
        with self._pending_lock:
            self._pending.append(line + "\n")
            self._pending_size += len(line) + 1
            full = self._pending_size >= self.max_pending
        if level >= logging.WARNING or full:
            self.flush()
        elif not self._wake.is_set():
            if self._flusher is None:
                self._start_flusher()
            self._wake.set()

    def flush(self) -> None:
        """Write every waiting line now, in the order they were logged (see `_pieces`)."""
        with self._write_lock:
            with self._pending_lock:
                if not self._pending:
                    return
                pending, self._pending, self._pending_size = self._pending, [], 0
            for piece in _pieces(pending):
                self._write(piece)

    def close(self) -> None:
        """Write what waits and stop the flusher; later lines are written at once."""
        self._closed = True
        self._closing.set()
        self._wake.set()
        self.flush()
        _writers.discard(self)
        super().close()

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            flush = getattr(self.stream, "flush", None)
            if flush is not None:
                flush()
        except Exception:
            if logging.raiseExceptions:
                traceback.print_exc(file=sys.stderr)

    def _start_flusher(self) -> None:
        with self._pending_lock:
            if self._flusher is not None:
                return
            self._flusher = threading.Thread(
                target=self._run_flusher, name="log-flusher", daemon=True
            )
            self._flusher.start()

    def _run_flusher(self) -> None:
        wake, closing = self._wake, self._closing
        while not closing.is_set():
            wake.wait()
            closing.wait(self.flush_interval)  # let the lines of this interval gather
            wake.clear()
            self.flush()

    def _after_fork_in_child(self) -> None:
        # The parent writes the lines it held; the child starts empty, with fresh locks
        # (another thread may have held them at the fork) and no flusher thread yet.
        self._reset()


def flush_logs() -> None:
    """Write every buffered line of this process now (e.g. when a role is told to stop)."""
    for writer in list(_writers):
        writer.flush()


def _flush_before_fork() -> None:
    for writer in list(_writers):
        writer.flush()


def _reset_after_fork() -> None:
    for writer in list(_writers):
        writer._after_fork_in_child()


os.register_at_fork(before=_flush_before_fork, after_in_child=_reset_after_fork)

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


# --------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------


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
        renderer = render_json

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
