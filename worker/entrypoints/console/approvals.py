"""The password channel's pages: the approval queue, one batch's sheet, approve and reject.

A batch of a merchant on the password service waits `awaiting_approval` until an
operator approves it here (`worker/services/approvals.py` has the rules). Approving
signs the request at that moment and answers the auto-submitting page that carries it
to the gateway (`worker/mapi/gateway_form.py`): the browser posts it to Alipay, where the
seller account signs in and types its payment password. That page is answered once per
approval, with no-cache headers and a content security policy that lets its form go to
the gateway's origin only; asking again says who approved it and when. Rejecting ends
the batch's refunds `rejected` (`OPERATOR_REJECTED`). Both are audited.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import flask
import structlog
from werkzeug.wrappers import Response

from worker.domain.errors import DatabaseUnavailable
from worker.domain.rules import MAX_REFUNDS_PER_TRADE
from worker.entrypoints.console.app import current_operator, deps
from worker.mapi import BEIJING
from worker.services.approvals import (
    ApprovalRefused,
    approval_queue,
    approval_sheet,
    approve_batch,
    reject_batch,
)
from worker.services.signin import audit

log = structlog.get_logger("worker.console")

blueprint = flask.Blueprint("approvals", __name__)

MAX_REASON_CHARS = 500


def beijing(moment: object) -> str:
    """A moment in Beijing time, the clock Alipay's dates follow."""
    if moment is None or not hasattr(moment, "astimezone"):
        return "-"
    return f"{moment.astimezone(BEIJING):%Y-%m-%d %H:%M} Beijing"


@blueprint.app_template_filter("beijing")
def _beijing_filter(moment: object) -> str:
    return beijing(moment)


@blueprint.route("/approvals")
def queue() -> str:
    d = deps()
    entries = approval_queue(d.db, d.merchants)
    return flask.render_template("approvals.html", entries=entries)


@blueprint.route("/approvals/<batch_no>")
def sheet(batch_no: str) -> Response | str:
    d = deps()
    found = approval_sheet(d.db, d.merchants, batch_no[:64])
    if found is None:
        flask.flash(f"Batch {batch_no[:64]} is not waiting for approval.", "refused")
        return flask.redirect(flask.url_for("approvals.queue"))
    return flask.render_template(
        "approval.html", sheet=found, entry=found.entry, limit=MAX_REFUNDS_PER_TRADE
    )


@blueprint.route("/approvals/<batch_no>/approve", methods=["POST"])
def approve(batch_no: str) -> Response:
    d = deps()
    operator = current_operator()
    structlog.contextvars.bind_contextvars(batch_no=batch_no[:64])
    try:
        form = approve_batch(
            d.db,
            d.merchants,
            batch_no[:64],
            operator=operator,
            gateway_url=d.gateway_url,
            clock=d.clock,
            script_src=flask.url_for("static", filename="autosubmit.js"),
        )
    except ApprovalRefused as exc:
        return _told("approve", batch_no, f"Refused: {exc}", "refused", back=_sheet(batch_no))
    _audit("approve", batch_no, "ok", f"form rendered to {operator}")
    log.warning("console.approve", operator=operator, outcome="ok")
    response = flask.make_response(form.page, 200)
    response.headers["Content-Type"] = f"text/html; charset={form.charset}"
    response.headers["Cache-Control"] = "no-store, no-cache, must-revalidate, max-age=0"
    response.headers["Pragma"] = "no-cache"
    response.headers["Expires"] = "0"
    response.headers["Content-Security-Policy"] = (
        f"default-src 'none'; script-src 'self'; form-action {_origin(form.gateway_url)};"
        " frame-ancestors 'none'"
    )
    return response


@blueprint.route("/approvals/<batch_no>/reject", methods=["POST"])
def reject(batch_no: str) -> Response:
    d = deps()
    reason = flask.request.form.get("reason", "").strip()[:MAX_REASON_CHARS]
    structlog.contextvars.bind_contextvars(batch_no=batch_no[:64])
    try:
        count = reject_batch(
            d.db, batch_no[:64], operator=current_operator(), reason=reason, clock=d.clock
        )
    except ApprovalRefused as exc:
        return _told("reject", batch_no, f"Refused: {exc}", "refused", back=_sheet(batch_no))
    return _told(
        "reject",
        batch_no,
        f"Batch {batch_no[:64]} rejected: its {count} refunds ended rejected"
        f" (OPERATOR_REJECTED). Reason: {reason}",
        "ok",
        back=flask.url_for("approvals.queue"),
    )


def _sheet(batch_no: str) -> str:
    return flask.url_for("approvals.sheet", batch_no=batch_no[:64])


def _told(action: str, batch_no: str, message: str, outcome: str, *, back: str) -> Response:
    _audit(action, batch_no, outcome, message)
    (log.info if outcome == "ok" else log.warning)(
        f"console.{action}", operator=current_operator(), outcome=outcome, detail=message[:300]
    )
    flask.flash(message, outcome)
    return flask.redirect(back)


def _audit(action: str, batch_no: str, outcome: str, detail: str) -> None:
    try:
        audit(
            deps().db,
            operator=current_operator(),
            action=action,
            target=batch_no[:64],
            outcome=outcome,
            detail=detail[:1000],
        )
    except DatabaseUnavailable:
        log.error("console.audit_unavailable", action=action, batch_no=batch_no[:64])


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
