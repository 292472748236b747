"""The buffered line writer: where every rendered log line of a process is written.

Every refund leaves a line in intake, packer and worker, so a line's cost counts.
`LineWriter` writes each line at once by default (the stdlib `StreamHandler`
behaviour); the roles ask it to buffer: lines are written together at most
`FLUSH_INTERVAL` seconds after the first of them, at once for WARNING and above, when
`MAX_PENDING_BYTES` are waiting, before a fork and at exit. `bench/micro_logwriter.py`
measures what that saves against one write per line to a pipe.

The trade-off: a process killed with SIGKILL (or a crash of the interpreter itself)
loses the lines of its last `FLUSH_INTERVAL` seconds at most. The ledger, not the log,
is the record of what happened to a refund.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import traceback
import weakref
from typing import Final, TextIO

__all__ = [
    "ATOMIC_WRITE_BYTES",
    "FLUSH_INTERVAL",
    "MAX_PENDING_BYTES",
    "LineWriter",
    "flush_logs",
]

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
