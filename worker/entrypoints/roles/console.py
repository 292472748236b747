"""`refund-worker console`: the operator console (worker/entrypoints/console) under gunicorn.

Settings are loaded once, in the master process; each gunicorn worker builds its own
database pool and gateway clients after the fork (`build_app`), so nothing connects
at import time or before a worker starts.

The session signing key comes from `CONSOLE_SECRET_KEY_FILE`. It is required unless
the console listens on loopback only (`CONSOLE_BIND` on 127.0.0.1, ::1 or localhost):
there a random key is made here, in the master, before the workers fork, so every
worker shares it (sessions end when the console restarts). Cookies are `Secure` unless
the console listens on loopback (`CONSOLE_SECURE_COOKIES` forces either way).
"""

from __future__ import annotations

import argparse
import secrets
from typing import TYPE_CHECKING
from wsgiref.types import WSGIApplication

import structlog

from worker.domain.errors import ConfigError
from worker.entrypoints.roles._common import add_server_arguments, positive_int

if TYPE_CHECKING:
    from worker.config.settings import Settings

log = structlog.get_logger(__name__)

DEFAULT_THREADS = 4
DEFAULT_GRACEFUL_TIMEOUT = 20


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bind", help="HOST:PORT to listen on (overrides CONSOLE_BIND)")
    parser.add_argument(
        "--workers", type=positive_int, help="worker processes (overrides CONSOLE_WORKERS)"
    )
    add_server_arguments(
        parser, threads=DEFAULT_THREADS, graceful_timeout=DEFAULT_GRACEFUL_TIMEOUT
    )


def session_key(settings: Settings, *, on_loopback: bool) -> bytes:
    """The key sessions are signed with (see the module docstring); ConfigError if missing."""
    if settings.console_secret_key is not None:
        return settings.console_secret_key.reveal().encode()
    if not on_loopback:
        raise ConfigError(
            "CONSOLE_SECRET_KEY_FILE is required when the console listens beyond this machine"
            f" (CONSOLE_BIND={settings.console_bind}); make one with `openssl rand -hex 32`"
        )
    return secrets.token_bytes(32)


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from worker.config.settings import exit_on_config_error
    from worker.config.values import bind as check_bind
    from worker.entrypoints.roles._common import boot
    from worker.observability.gunicorn import GunicornServer

    settings = boot("console")  # exits 78 with one line on a bad setting
    if args.bind:
        settings = replace(
            settings, console_bind=exit_on_config_error(check_bind)("--bind", args.bind)
        )
    key = exit_on_config_error(session_key)(settings, on_loopback=settings.console_on_loopback)
    workers: int = args.workers or settings.console_workers
    threads: int = args.threads

    def load() -> WSGIApplication:
        return build_app(settings, secret_key=key, pool_size=threads + 1)

    options = {
        "bind": [settings.console_bind],
        "workers": workers,
        "threads": threads,
        "worker_class": "gthread",
        "graceful_timeout": args.graceful_timeout,
        "timeout": 60,
        "keepalive": 5,
        "errorlog": "-",
        "loglevel": "info",
        "proc_name": "refund-worker-console",
        "preload_app": False,
        "control_socket_disable": True,
    }
    log.info(
        "console.starting",
        bind=settings.console_bind,
        workers=workers,
        threads=threads,
        secure_cookies=settings.console_cookies_secure,
        key_from_file=settings.console_secret_key is not None,
    )
    try:
        GunicornServer(load, options).run()
    except SystemExit as exit_:
        code = exit_.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return 0


def build_app(settings: Settings, *, secret_key: bytes, pool_size: int) -> WSGIApplication:
    """The console wired to the database, the merchants' query clients and the bus."""
    from worker.entrypoints import runtime
    from worker.entrypoints.console.app import BusSettings, ConsoleConfig, ConsoleDeps, create_app

    rt = runtime.Runtime(settings, clock=runtime.make_clock(settings), db_pool_size=pool_size)
    runtime.install(rt)
    deps = ConsoleDeps(
        db=rt.db,
        merchants=rt.merchants,
        clock=rt.clock,
        refund_queries=rt.query_client,
        bus=BusSettings(settings.amqp_url, settings.refund_exchange),
        release_after_seconds=settings.reconcile_release_after_seconds,
        gateway_url=settings.gateway_url,
    )
    config = ConsoleConfig(secret_key=secret_key, secure_cookies=settings.console_cookies_secure)
    app: WSGIApplication = create_app(deps, config)
    return app

