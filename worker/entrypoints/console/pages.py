"""The console's read pages: overview, search, a refund's / batch's / trade's history, audit.

Everything shown comes from the read models (`worker.adapters.postgres.console_reads`),
the audit trail and a peek at the dead-letter queue; nothing here changes anything.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import flask
import structlog
from werkzeug.wrappers import Response

from worker.adapters.postgres import console_reads
from worker.adapters.postgres import operators as operator_store
from worker.domain.errors import BusUnavailable
from worker.entrypoints.console import charts
from worker.entrypoints.console.app import config, deps

log = structlog.get_logger("worker.console")

blueprint = flask.Blueprint("pages", __name__)

CHART_MINUTES = 60
MAX_QUERY_CHARS = console_reads.MAX_FIND_LENGTH


@dataclass(frozen=True, slots=True)
class DeadLetters:
    """The dead-letter queue as the overview shows it."""

    total: int
    by_reason: list[tuple[str, int]]
    sampled: int
    error: str | None = None


def dead_letter_reason(headers: Any) -> str:
    """Why a message was dead-lettered: our reason header, else the broker's own."""
    from worker.adapters.rabbitmq import HEADER_REASON

    reason = headers.get(HEADER_REASON) or headers.get("x-first-death-reason")
    if isinstance(reason, bytes):
        reason = reason.decode("utf-8", "replace")
    return str(reason)[:64] if reason else "unknown"


def peek_dead_letters() -> DeadLetters:
    from worker.adapters.rabbitmq import Topology
    from worker.adapters.rabbitmq import peek_dead_letters as peek

    bus = deps().bus
    try:
        found = peek(bus.amqp_url, Topology.for_exchange(bus.exchange), config().dead_letter_peek)
    except BusUnavailable as exc:
        log.warning("console.dead_letters_unavailable", error=str(exc)[:200])
        return DeadLetters(0, [], 0, error=str(exc)[:200])
    reasons = Counter(dead_letter_reason(d.headers) for d in found.sample)
    return DeadLetters(found.total, sorted(reasons.items()), len(found.sample))


@blueprint.route("/")
def overview() -> str:
    d = deps()
    now = d.clock()
    with d.db.transaction() as conn:
        summary = console_reads.overview(conn)
        completed = console_reads.completed_per_minute(conn, minutes=CHART_MINUTES, now=now)
        backlog = console_reads.backlog_per_minute(conn, minutes=CHART_MINUTES, now=now)
    served = {m.partner: m.id for m in d.merchants}
    return flask.render_template(
        "overview.html",
        summary=summary,
        served=served,
        dead_letters=peek_dead_letters(),
        completed_chart=charts.bar_chart(
            completed, title=f"Refunds completed per minute, last {CHART_MINUTES} minutes"
        ),
        backlog_chart=charts.line_chart(
            backlog, title=f"Refunds waiting, last {CHART_MINUTES} minutes"
        ),
    )


@blueprint.route("/search")
def search() -> Response | str:
    text = flask.request.args.get("q", "").strip()
    if not text:
        return flask.render_template("search.html", q="", hits=[], problem=None)
    if len(text) > MAX_QUERY_CHARS:
        problem = f"a refund_id, trade_no or batch_no has at most {MAX_QUERY_CHARS} characters"
        page = flask.render_template(
            "search.html", q=text[:MAX_QUERY_CHARS], hits=[], problem=problem
        )
        return flask.make_response(page, 400)
    with deps().db.transaction() as conn:
        hits = console_reads.find(conn, text)
    if len(hits) == 1:
        return flask.redirect(_hit_url(hits[0].kind, hits[0].key))
    return flask.render_template("search.html", q=text, hits=hits, problem=None, url=_hit_url)


def _hit_url(kind: str, key: str) -> str:
    endpoint = {"refund": "pages.refund", "batch": "pages.batch", "trade": "pages.trade"}[kind]
    return flask.url_for(endpoint, key=key)


def _not_found(what: str, key: str) -> Response:
    page = flask.render_template(
        "error.html",
        title=f"No {what} {key[:64]}",
        message=f"The ledger has no {what} {key[:64]!r}. Search again?",
    )
    return flask.make_response(page, 404)


@blueprint.route("/refunds/<path:key>")
def refund(key: str) -> Response | str:
    with deps().db.transaction() as conn:
        history = console_reads.refund_history(conn, key)
    if history is None:
        return _not_found("refund", key)
    return flask.render_template("refund.html", key=key, history=history)


@blueprint.route("/batches/<key>")
def batch(key: str) -> Response | str:
    with deps().db.transaction() as conn:
        history = console_reads.batch_history(conn, key)
    if history is None:
        return _not_found("batch", key)
    return flask.render_template("batch.html", key=key, history=history)


@blueprint.route("/trades/<key>")
def trade(key: str) -> Response | str:
    with deps().db.transaction() as conn:
        history = console_reads.trade_history(conn, key)
    if history is None:
        return _not_found("trade", key)
    return flask.render_template("trade.html", key=key, history=history)


@blueprint.route("/audit")
def audit() -> str:
    with deps().db.transaction() as conn:
        entries = operator_store.latest_audit(conn, limit=300)
    return flask.render_template("audit.html", entries=entries)
