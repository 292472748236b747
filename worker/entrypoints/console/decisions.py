"""The decisions an operator takes from the console, each a POST with a CSRF token.

Each calls the service function the CLI calls, with the same guards, the signed-in
operator as `operator`, and is audited with its outcome: `ok`, `refused` (a guard said
no: the flash message gives the guard's reason) or `failed` (the database, the broker
or the gateway did not answer). `force` is not offered here: a forced release is a
`refund-worker resolve --force` on the command line, on purpose.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import flask
import structlog
from werkzeug.wrappers import Response

from worker.domain.errors import (
    BusUnavailable,
    ConfigError,
    DatabaseUnavailable,
    GatewayError,
)
from worker.entrypoints.console.app import current_operator, deps
from worker.services.signin import audit

log = structlog.get_logger("worker.console")

blueprint = flask.Blueprint("decisions", __name__)

MAX_REASON_CHARS = 500
MAX_REPLAY = 10_000


class Refused(Exception):
    """A guard refused the decision; its message says why (nothing changed)."""


def _decide(action: str, target: str | None, back: str, act: Callable[[], str]) -> Response:
    """Run `act` (it returns what to tell the operator), audit and log its outcome."""
    operator = current_operator()
    try:
        message = act()
        outcome, category = "ok", "ok"
    except Refused as exc:
        message, outcome, category = f"Refused: {exc}", "refused", "refused"
    except (DatabaseUnavailable, BusUnavailable, GatewayError, ConfigError) as exc:
        message, outcome, category = f"Failed: {exc}", "failed", "failed"
    log_line = log.warning if outcome != "ok" else log.info
    log_line(
        f"console.{action}", operator=operator, target=target, outcome=outcome, detail=message[:300]
    )
    try:
        audit(
            deps().db,
            operator=operator,
            action=action,
            target=target,
            outcome=outcome,
            detail=message[:1000],
        )
    except DatabaseUnavailable:
        log.error("console.audit_unavailable", action=action, target=target)
        message += " (the audit log could not be written: the database is unavailable)"
    flask.flash(message, category)
    return flask.redirect(back)


def _limit(default: int) -> int:
    text = flask.request.form.get("limit", "").strip() or str(default)
    if not text.isdigit() or not 1 <= int(text) <= MAX_REPLAY:
        raise Refused(f"limit must be a whole number from 1 to {MAX_REPLAY}, not {text[:20]!r}")
    return int(text)


@blueprint.route("/merchants/<partner>/resume", methods=["POST"])
def resume(partner: str) -> Response:
    from worker.adapters.postgres import ledger
    from worker.services.sweeper import resume_submission

    structlog.contextvars.bind_contextvars(merchant=partner)

    def act() -> str:
        d = deps()
        if d.merchants.get(partner) is None:
            raise Refused(f"merchant {partner[:64]} is not served by this deployment")
        with d.db.transaction() as conn:
            halt = ledger.submission_halt(conn, partner)
        if halt is None:
            raise Refused(f"submission of merchant {partner} is not halted")
        batches = resume_submission(d.db, partner, operator=current_operator())
        return (
            f"Submission resumed for merchant {partner} (halted for: {halt[:120]});"
            f" {len(batches)} held batches are due again."
        )

    return _decide("resume_submission", partner, flask.url_for("pages.overview"), act)


@blueprint.route("/batches/<batch_no>/reconcile", methods=["POST"])
def reconcile(batch_no: str) -> Response:
    from worker.services.reconciler import reconcile_batch

    structlog.contextvars.bind_contextvars(batch_no=batch_no)

    def act() -> str:
        d = deps()
        report = reconcile_batch(
            d.db,
            d.refund_queries,
            batch_no,
            clock=d.clock,
            release_after_seconds=d.release_after_seconds,
            purpose="operator",
        )
        if report.state_before is None:
            raise Refused(f"no batch {batch_no[:64]}")
        changes = "; ".join(report.changes) or "nothing changed"
        return (
            f"Batch {batch_no}: the gateway answered {report.answer};"
            f" {report.state_before} -> {report.state_after}; {changes}."
        )

    return _decide("reconcile", batch_no, flask.url_for("pages.batch", key=batch_no), act)


@blueprint.route("/batches/<batch_no>/resolve", methods=["POST"])
def resolve(batch_no: str) -> Response:
    from worker.services.operators import ResolveRefused, resolve_batch

    structlog.contextvars.bind_contextvars(batch_no=batch_no)
    decision = flask.request.form.get("decision", "")
    reason = flask.request.form.get("reason", "").strip()

    def act() -> str:
        if decision not in ("accepted", "not_accepted"):
            raise Refused("choose accepted or not accepted")
        if not reason:
            raise Refused("a reason is required")
        if len(reason) > MAX_REASON_CHARS:
            raise Refused(f"a reason has at most {MAX_REASON_CHARS} characters")
        d = deps()
        try:
            result = resolve_batch(
                d.db,
                d.refund_queries,
                batch_no,
                decision=decision,
                operator=current_operator(),
                reason=reason,
                force=False,
                clock=d.clock,
            )
        except ResolveRefused as exc:
            raise Refused(str(exc)) from exc
        said = "" if result.query is None else f" (the gateway answered {result.query.answer})"
        return (
            f"Batch {batch_no} resolved as {decision.replace('_', ' ')}:"
            f" {result.state_before} -> {result.state_after}; {result.refunds} refunds moved{said}."
        )

    return _decide(
        f"resolve_{decision}" if decision in ("accepted", "not_accepted") else "resolve",
        batch_no,
        flask.url_for("pages.batch", key=batch_no),
        act,
    )


@blueprint.route("/dead-letters/replay", methods=["POST"])
def replay_dead_letters() -> Response:
    from worker.adapters.rabbitmq import Topology
    from worker.services.replay import replay_dead_letters as replay

    def act() -> str:
        limit = _limit(100)
        bus = deps().bus
        topology = Topology.for_exchange(bus.exchange)
        moved = replay(bus.amqp_url, topology, limit, operator=current_operator())
        return f"{moved} dead letters replayed to {topology.exchange}."

    return _decide("replay_dead_letters", None, flask.url_for("pages.overview"), act)


@blueprint.route("/notifications/replay", methods=["POST"])
def replay_notifications() -> Response:
    from worker.services.replay import replay_notifications as replay

    outcome = flask.request.form.get("outcome", "unknown_batch").strip()[:64]

    def act() -> str:
        limit = _limit(100)
        if not outcome.replace("_", "").isalnum():
            raise Refused(f"no such notification outcome {outcome!r}")
        results = replay(deps().db, outcome=outcome, limit=limit, operator=current_operator())
        after = Counter(str(v) for v in results.values())
        summary = ", ".join(f"{k}: {n}" for k, n in sorted(after.items())) or "none stored"
        return f"{len(results)} notifications with outcome {outcome} replayed ({summary})."

    return _decide("replay_notifications", outcome, flask.url_for("pages.overview"), act)
