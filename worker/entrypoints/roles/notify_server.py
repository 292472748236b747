"""`refund-worker notify-server`: serve Alipay's notifications with gunicorn.

Settings are loaded once, in the master process; each gunicorn worker builds
its own collaborators after the fork (one pooled `GatewayClient` per worker,
never a socket shared across processes), so nothing connects at import time
or before a worker starts.

Workers are `gthread`: a notification waits on `notify_verify` and on the
broker's confirm, and threads keep one slow notification from holding up the
others. On SIGTERM gunicorn stops accepting, lets requests in flight finish
for up to `--graceful-timeout` seconds (default 25, inside Kubernetes' default
30 s grace period), then exits. Alipay resends anything not answered
`success`, so a request cut short is retried, never lost.

With more than one worker, each worker keeps its own prometheus registry and
`/metrics` shows the worker that answered; scale with `--threads` first.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING
from urllib.parse import urlsplit
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

import structlog

from worker.domain.errors import ConfigError
from worker.entrypoints.roles._common import add_server_arguments, positive_int

if TYPE_CHECKING:
    from worker.config.settings import Settings
    from worker.domain.merchants import Merchants

log = structlog.get_logger(__name__)

DEFAULT_THREADS = 8
DEFAULT_GRACEFUL_TIMEOUT = 25
DEFAULT_BODY_TIMEOUT = 10.0
_DEFAULT_PORTS = {"http": 80, "https": 443}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--bind", help="HOST:PORT to listen on (overrides NOTIFY_BIND, default 127.0.0.1:8080)"
    )
    parser.add_argument(
        "--workers", type=positive_int, default=1, help="worker processes (default 1)"
    )
    add_server_arguments(parser, threads=DEFAULT_THREADS, graceful_timeout=DEFAULT_GRACEFUL_TIMEOUT)
    parser.add_argument(
        "--body-timeout",
        type=_positive_float,
        default=DEFAULT_BODY_TIMEOUT,
        help="seconds a single socket read of a request may block "
        f"(default {DEFAULT_BODY_TIMEOUT:g})",
    )


def run(args: argparse.Namespace) -> int:
    from worker.entrypoints.roles._common import boot
    from worker.observability.gunicorn import GunicornServer

    settings = boot("notify-server")  # exits 78 with one line on a bad setting
    bind = args.bind or settings.notify_bind
    threads: int = args.threads
    body_timeout: float = args.body_timeout

    def load() -> WSGIApplication:
        return build_app(settings, pool_size=threads + 2, body_timeout=body_timeout)

    options = {
        "bind": [bind],
        "workers": args.workers,
        "threads": threads,
        "worker_class": "gthread",
        "graceful_timeout": args.graceful_timeout,
        "timeout": 30,
        "keepalive": 5,
        "errorlog": "-",
        "loglevel": "info",
        "proc_name": "refund-worker-notify-server",
        "preload_app": False,
        "control_socket_disable": True,
    }
    log.info("notify_server.starting", bind=bind, workers=args.workers, threads=threads)
    try:
        GunicornServer(load, options).run()
    except SystemExit as exit_:
        code = exit_.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return 0


def build_app(settings: Settings, *, pool_size: int, body_timeout: float) -> WSGIApplication:
    """Wire the receiver to the real signature check, gateway, broker and probes."""
    from worker.adapters.gateway.client import GatewayClient
    from worker.adapters.wsgi.receiver import make_app

    merchants = settings.merchants()
    gateway = GatewayClient(
        settings.gateway_url,
        charset=merchants.default.charset,
        partner=merchants.default.partner,
        connect_timeout=settings.gateway_connect_timeout,
        read_timeout=settings.gateway_read_timeout,
        pool_size=pool_size,
    )

    def enqueue(kind: str, form: dict[str, str], partner: str) -> None:
        from worker.adapters.dramatiq.jobs import enqueue_notification

        enqueue_notification(settings, kind, form, partner)

    ready = ReadinessProbe(
        {
            "broker": broker_check(settings.amqp_url),
            "gateway": tcp_check(settings.gateway_url),
        }
    )
    from worker.adapters.postgres.pool import Database
    from worker.observability.metrics import register_ledger

    register_ledger(
        Database(settings.database_url, max_size=1, name="refund-worker-metrics"),
        [m.partner for m in merchants],
    )
    openapi = openapi_handler(settings, merchants, pool_size=pool_size)
    app = make_app(
        charset=merchants.default.charset,
        max_body_bytes=settings.notify_max_body_bytes,
        candidates=candidate_partners(merchants),
        verify_signature=signature_checker(merchants),
        notify_verify=gateway.notify_verify,
        enqueue=enqueue,
        ready=ready,
        openapi=openapi,
    )
    return bounded_socket_reads(app, body_timeout)


def openapi_handler(
    settings: Settings, merchants: Merchants, *, pool_size: int
) -> Callable[[WSGIEnvironment, str | None], tuple[int, bytes]] | None:
    """The OpenAPI route: verified notifications stored in PostgreSQL, then queued as
    kind `openapi`; None when no merchant has an OpenAPI application."""
    if not any(m.openapi_app is not None for m in merchants):
        return None
    from datetime import UTC, datetime

    from worker.adapters.postgres.pool import Database
    from worker.adapters.wsgi.openapi_notify import make_openapi_handler
    from worker.services.openapi_notifications import receive_openapi_notification

    db = Database(settings.database_url, max_size=pool_size, name="refund-worker-notify")

    def store(form: dict[str, str], partner: str) -> None:
        receive_openapi_notification(db, form, partner, datetime.now(tz=UTC))

    def enqueue(form: dict[str, str], partner: str) -> None:
        from worker.adapters.dramatiq.jobs import enqueue_notification

        enqueue_notification(settings, "openapi", form, partner)

    return make_openapi_handler(
        max_body_bytes=settings.notify_max_body_bytes,
        candidates=openapi_candidates(merchants),
        verify=openapi_signature_checker(merchants),
        store=store,
        enqueue=enqueue,
    )


def openapi_candidates(merchants: Merchants) -> Callable[[str | None], Sequence[str] | None]:
    """The partner ids of the merchants with an OpenAPI app a notification may be for."""
    with_app = tuple(m.partner for m in merchants if m.openapi_app is not None)

    def candidates(name: str | None) -> Sequence[str] | None:
        if name is None:
            return with_app
        merchant = merchants.resolve(name)
        if merchant is None or merchant.openapi_app is None:
            return None
        return (merchant.partner,)

    return candidates


def openapi_signature_checker(merchants: Merchants) -> Callable[[Mapping[str, str], str], bool]:
    """Whether the Alipay public key of the merchant's app verifies a notification."""
    from worker.openapi import verify_notification

    def check(form: Mapping[str, str], partner: str) -> bool:
        merchant = merchants.get(partner)
        app = merchant.openapi_app if merchant is not None else None
        return app is not None and verify_notification(form, app.alipay_public_key_pem)

    return check


def candidate_partners(merchants: Merchants) -> Callable[[str | None], Sequence[str] | None]:
    """The partner ids a notification on a route may be for: the route's merchant, or all."""
    every = tuple(m.partner for m in merchants)

    def candidates(name: str | None) -> Sequence[str] | None:
        if name is None:
            return every
        merchant = merchants.resolve(name)
        return None if merchant is None else (merchant.partner,)

    return candidates


def signature_checker(merchants: Merchants) -> Callable[[Mapping[str, str], str, str], bool]:
    """A check of a notification's `sign` with one merchant's sign type and key.

    The signature is checked over the values in the charset the form was decoded
    in (its Content-Type label, given by the receiver), not the merchant's
    configured charset: Alipay signs in the charset it sends.

    Only the merchant's configured sign type is accepted: the sender chooses the
    `sign_type` field, and letting it pick MD5 when the merchant uses RSA
    would let whoever learned one key speak for the other. Alipay signs a
    notification the way the request was signed.
    """
    from worker.mapi import verify

    def check(form: Mapping[str, str], charset: str, partner: str) -> bool:
        merchant = merchants.get(partner)
        if merchant is None or form.get("sign_type") != merchant.gateway.sign_type:
            return False
        if merchant.gateway.sign_type == "MD5":
            if merchant.gateway.md5_key is None:
                return False
            return verify(form, charset=charset, md5_key=merchant.gateway.md5_key)
        if merchant.alipay_public_key_pem is None:
            return False
        return verify(form, charset=charset, public_key_pem=merchant.alipay_public_key_pem)

    return check


Check = Callable[[], None]


class ReadinessProbe:
    """`ready()` for `/readyz`: every named check passes (returns without raising).

    The answer is cached for `cache_seconds`, so frequent probes from several
    kubelets do not open a broker connection each. A change of answer and
    every failing check are logged (name and error type only).
    """

    def __init__(self, checks: Mapping[str, Check], *, cache_seconds: float = 5.0) -> None:
        self._checks = dict(checks)
        self._cache_seconds = cache_seconds
        self._lock = threading.Lock()
        self._checked_at = float("-inf")
        self._answer = False

    def __call__(self) -> bool:
        with self._lock:
            if time.monotonic() - self._checked_at < self._cache_seconds:
                return self._answer
            answer = True
            for name, check in self._checks.items():
                try:
                    check()
                except Exception as exc:
                    answer = False
                    log.warning("readyz.unavailable", check=name, error=type(exc).__name__)
            if answer != self._answer:
                log.info("readyz.changed", ready=answer)
            self._answer, self._checked_at = answer, time.monotonic()
            return answer


def broker_check(amqp_url: str, *, timeout: float = 2.0) -> Check:
    """Open (and close) an AMQP connection and channel: broker up, credentials good."""

    def check() -> None:
        from worker.adapters.rabbitmq import bus_ping

        bus_ping(amqp_url, timeout=timeout)

    return check


def tcp_check(url: str, *, timeout: float = 1.0) -> Check:
    """Open (and close) a TCP connection to the URL's host and port."""
    host, port = endpoint(url)

    def check() -> None:
        with socket.create_connection((host, port), timeout=timeout):
            pass

    return check


def endpoint(url: str) -> tuple[str, int]:
    """(host, port) of a URL, with the scheme's default port; no credentials kept."""
    parts = urlsplit(url)
    if not parts.hostname:
        raise ConfigError(f"no host in URL with scheme {parts.scheme!r}")
    port = parts.port or _DEFAULT_PORTS.get(parts.scheme.lower())
    if port is None:
        raise ConfigError(f"no port in URL with scheme {parts.scheme!r}")
    return parts.hostname, port


def bounded_socket_reads(app: WSGIApplication, seconds: float) -> WSGIApplication:
    """Bound every socket read and write of a request under gunicorn.

    A worker thread blocked on a client that announced a body and stopped
    sending would otherwise wait forever (gthread workers keep heartbeating,
    so gunicorn's worker timeout never fires). With a socket timeout the
    receiver's body read fails, and it answers `fail` instead of hanging.
    """

    def wrapped(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        sock = environ.get("gunicorn.socket")
        if isinstance(sock, socket.socket):
            with contextlib.suppress(OSError):
                sock.settimeout(seconds)
        return app(environ, start_response)

    return wrapped


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError("must be a positive number of seconds")
    return value
