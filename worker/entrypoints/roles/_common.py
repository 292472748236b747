"""What every role does at start: settings once, logging, signal handling, backoff."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType

import structlog

from worker.config.settings import Settings, load_or_exit
from worker.domain.backoff import backoff_delay
from worker.domain.errors import TransientError
from worker.observability import health
from worker.observability.logging import bind_process, configure_logging, flush_logs

log = structlog.get_logger("worker.role")


# Commands a person runs for an answer: their standard output is the answer (JSON or
# lines to read or pipe), so their log lines go to standard error.
OPERATOR_COMMANDS = frozenset(
    {"status", "batches", "reconcile", "resolve", "replay", "resume", "operators"}
)


def boot(role: str) -> Settings:
    """Load and validate the settings (exit 78 with one line if bad), set up logging."""
    settings = load_or_exit()
    # Buffered: lines are written together every few tens of milliseconds instead of one
    # write per line (see worker.observability.logging); warnings and errors are written at once.
    stream = sys.stderr if role in OPERATOR_COMMANDS else None
    configure_logging(settings.log_level, settings.log_format, buffered=True, stream=stream)
    bind_process(role=role)
    log.info("role.starting", settings=settings.describe())
    if role in ("intake", "worker", "relay", "scheduler"):
        from worker.observability.metrics import serve_if_configured

        serve_if_configured(settings.metrics_port)
    return settings


def stop_on_signals() -> threading.Event:
    """An event set by SIGTERM or SIGINT: stop taking work, finish what is in hand."""
    stop = threading.Event()

    def handler(signum: int, _frame: FrameType | None) -> None:
        log.info("role.stopping", signal=signal.Signals(signum).name)
        flush_logs()
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return stop


def run_loop(
    name: str,
    step: Callable[[], float],
    stop: threading.Event,
    *,
    max_backoff: float = 10.0,
) -> None:
    """Call `step` until `stop`; it returns how long to sleep before the next call.

    A `TransientError` (database or broker down) is logged and retried with a
    bounded exponential backoff; the loop itself never dies of it. Every step beats the
    loop's heartbeat `name` (`worker.observability.health`), a failed one as only waiting.
    """
    heartbeat = health.loop(name, allowed_silence=max(health.DEFAULT_SILENCE, 3 * max_backoff))
    failures = 0
    while not stop.is_set():
        try:
            pause = step()
            if failures:
                log.info(f"{name}.recovered", after_failures=failures)
            failures = 0
        except TransientError as exc:
            failures += 1
            pause = backoff_delay(failures, base=0.2, cap=max_backoff)
            log.warning(f"{name}.unavailable", error=str(exc), retry_in=pause, failures=failures)
        heartbeat.beat(completed=not failures)
        if pause > 0:
            stop.wait(pause)


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def add_server_arguments(
    parser: argparse.ArgumentParser, *, threads: int, graceful_timeout: int
) -> None:
    """The options of a role served by gunicorn (notify-server, console): threads per
    worker and how long requests in flight may take after SIGTERM."""
    parser.add_argument(
        "--threads",
        type=positive_int,
        default=threads,
        help=f"threads per worker (default {threads})",
    )
    parser.add_argument(
        "--graceful-timeout",
        type=positive_int,
        default=graceful_timeout,
        help=f"seconds requests in flight may take after SIGTERM (default {graceful_timeout})",
    )
