"""Prometheus metrics of the pipeline, and the ledger gauges computed at scrape time.

Each role serves its own process's metrics on `METRICS_PORT` when set
(`serve_if_configured`), with its loops' `/healthz` and `/readyz` beside them
(`worker.observability.health`); the notify-server also answers `GET /metrics`. The
ledger collector (waiting refunds by state, age of the oldest, flagged batches,
outbox backlog) reads PostgreSQL when scraped, so any one role exposing it gives
the whole picture.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterable, Iterator
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import psycopg
import structlog
from prometheus_client import REGISTRY, Counter, Histogram, make_wsgi_app
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import ThreadingWSGIServer
from prometheus_client.registry import Collector

from worker.adapters.postgres.pool import Database
from worker.adapters.postgres.status import ledger_gauges
from worker.domain.errors import DatabaseUnavailable
from worker.observability.health import Heartbeats, with_health_routes

log = structlog.get_logger(__name__)

INTAKE_MESSAGES = Counter(
    "refund_intake_messages_total",
    "refund.requested messages taken by intake, by outcome",
    ["outcome"],  # stored, rejected, duplicate, dead_lettered
)
BATCH_ITEMS = Histogram(
    "refund_batch_items",
    "Items per batch when the batch is cut",
    buckets=(1, 10, 50, 100, 250, 500, 750, 1000),
)
SUBMIT_OUTCOMES = Counter(
    "refund_batch_submissions_total",
    "Batch submission attempts, by merchant (partner id) and decision",
    ["merchant", "action"],
)
NOTIFICATIONS = Counter(
    "refund_notifications_processed_total",
    "Notifications applied, by merchant (partner id; unknown before it is known) and outcome",
    ["merchant", "outcome"],
)
OPENAPI_CALLS = Counter(
    "refund_openapi_calls_total",
    "OpenAPI refund calls (sends and queries), by merchant, channel, outcome and decision",
    ["merchant", "channel", "outcome", "action"],
)
OPENAPI_NOTIFICATIONS = Counter(
    "refund_openapi_notifications_total",
    "OpenAPI notifications received, by merchant (unknown before it is known) and outcome",
    ["merchant", "outcome"],
)
EVENTS_PUBLISHED = Counter("refund_completed_published_total", "refund.completed events published")


class LedgerCollector(Collector):
    """Gauges read from the ledger when scraped."""

    def __init__(self, db: Database, merchants: Iterable[str] = ()) -> None:
        self._db = db
        self._merchants = frozenset(merchants)  # partner ids always shown, even when idle

    def describe(self) -> Iterator[GaugeMetricFamily]:
        # Registration asks for the names; answer without touching the database.
        yield from self._families()

    def _families(self) -> tuple[GaugeMetricFamily, ...]:
        return (
            GaugeMetricFamily(
                "refund_waiting",
                "Refunds not yet final, by merchant (partner id) and state",
                labels=["merchant", "state"],
            ),
            GaugeMetricFamily(
                "refund_oldest_waiting_seconds",
                "Age of the oldest refund not yet final, by merchant",
                labels=["merchant"],
            ),
            GaugeMetricFamily(
                "refund_batches_flagged",
                "Batches an operator must look at, by merchant and flag",
                labels=["merchant", "flag"],
            ),
            GaugeMetricFamily("refund_outbox_backlog", "Events waiting to be published"),
            GaugeMetricFamily(
                "refund_notifications_unapplied",
                "Verified notifications stored but not applied yet, by outcome",
                labels=["outcome"],
            ),
            GaugeMetricFamily(
                "refund_oldest_unapplied_notification_seconds",
                "Age of the oldest verified notification not applied yet",
            ),
            GaugeMetricFamily(
                "refund_submission_halted",
                "1 while the merchant's submission is halted after a configuration error"
                " (until `resume`)",
                labels=["merchant"],
            ),
            GaugeMetricFamily(
                "refund_batches_awaiting_approval",
                "Batches of the password service waiting for an operator (awaiting_approval)"
                " or approved and not yet notified (approved), by merchant",
                labels=["merchant", "state"],
            ),
            GaugeMetricFamily(
                "refund_oldest_awaiting_approval_seconds",
                "Age of the oldest batch in each approval state, by merchant",
                labels=["merchant", "state"],
            ),
        )

    def collect(self) -> Iterator[GaugeMetricFamily]:
        (
            waiting,
            oldest,
            flagged,
            outbox,
            unapplied,
            unapplied_age,
            halted,
            approvals,
            approvals_age,
        ) = self._families()
        try:
            with self._db.transaction() as conn:
                gauges = ledger_gauges(conn)
        except (DatabaseUnavailable, psycopg.Error) as exc:
            log.warning("metrics.ledger_unavailable", error=type(exc).__name__)
            return
        merchants = sorted(self._merchants | gauges.merchants)
        for partner, state, count, _age in gauges.waiting:
            waiting.add_metric([partner, state], float(count))
        for partner in merchants:
            ages = (age for p, _s, _c, age in gauges.waiting if p == partner)
            oldest.add_metric([partner], max(ages, default=0.0))
        for partner, flag, count in gauges.flagged:
            flagged.add_metric([partner, flag], float(count))
        outbox.add_metric([], float(gauges.outbox))
        for outcome, count, _age in gauges.unapplied:
            unapplied.add_metric([outcome], float(count))
        unapplied_age.add_metric([], max((age for _o, _c, age in gauges.unapplied), default=0.0))
        for partner in merchants:
            halted.add_metric([partner], 1.0 if partner in gauges.halted else 0.0)
        for partner, state, count, age in gauges.approvals:
            approvals.add_metric([partner, state], float(count))
            approvals_age.add_metric([partner, state], age)
        yield from (
            waiting,
            oldest,
            flagged,
            outbox,
            unapplied,
            unapplied_age,
            halted,
            approvals,
            approvals_age,
        )


_ledger_registered = False


def register_ledger(db: Database, merchants: Iterable[str] = ()) -> None:
    """Expose the ledger gauges from this process (once); `merchants` (partner ids) are
    always shown, even with nothing waiting."""
    global _ledger_registered
    if not _ledger_registered:
        REGISTRY.register(LedgerCollector(db, merchants))
        _ledger_registered = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """Probes and scrapes every few seconds: no access log."""


def serve(
    port: int,
    addr: str = "0.0.0.0",
    *,
    heartbeats: Heartbeats | None = None,
    registry: Collector = REGISTRY,
) -> WSGIServer:
    """Serve `/metrics` (any other path too, as prometheus_client does), `/healthz` and
    `/readyz` on `addr:port` from a daemon thread, one thread per request.

    prometheus_client's `start_http_server` with the two health routes in front: the
    same WSGI app, server class and address family, so `/metrics` answers as before.
    """
    family, _, _, _, sockaddr = socket.getaddrinfo(
        addr, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]

    class Server(ThreadingWSGIServer):
        address_family = family

    app = with_health_routes(make_wsgi_app(registry), heartbeats)
    httpd = make_server(str(sockaddr[0]), port, app, Server, handler_class=_QuietHandler)
    threading.Thread(target=httpd.serve_forever, name="metrics-http", daemon=True).start()
    return httpd


def serve_if_configured(port: int | None) -> None:
    if port:
        serve(port)
        log.info("metrics.serving", port=port)
