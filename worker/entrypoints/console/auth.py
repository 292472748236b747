"""Signing in and out (`/login`, `/logout`); every attempt is audited and logged.

The page says only "name or password is wrong" or "account locked until HH:MM UTC"
(what that reveals: `worker.services.signin`).
"""

from __future__ import annotations

import flask
import structlog
from werkzeug.wrappers import Response

from worker.entrypoints.console import sessions
from worker.entrypoints.console.app import config, deps
from worker.services.signin import MAX_PASSWORD_CHARS, audit, authenticate

log = structlog.get_logger("worker.console")

blueprint = flask.Blueprint("auth", __name__)


@blueprint.route("/login", methods=["GET", "POST"])
def login() -> Response | str:
    target = sessions.safe_next(flask.request.values.get("next"))
    if flask.g.get("operator") and flask.request.method == "GET":
        return flask.redirect(target)
    if flask.request.method == "GET":
        return flask.render_template("login.html", next=target, error=None, name="")
    name = flask.request.form.get("name", "").strip()[:64]
    password = flask.request.form.get("password", "")[: MAX_PASSWORD_CHARS + 1]
    cfg = config()
    result = authenticate(
        deps().db,
        name,
        password,
        max_failures=cfg.lock_failures,
        lock_seconds=cfg.lock_seconds,
    )
    shown_name = name or "(empty)"
    if not result.ok:
        detail = "account locked" if result.outcome == "locked" else "name or password wrong"
        audit(
            deps().db,
            operator=shown_name,
            action="sign_in",
            target=None,
            outcome="refused",
            detail=detail,
        )
        log.warning("console.sign_in_refused", operator=shown_name, why=result.outcome)
        if result.outcome == "locked" and result.locked_until is not None:
            error = sessions.lock_message(result.locked_until)
        else:
            error = sessions.WRONG_MESSAGE
        page = flask.render_template("login.html", next=target, error=error, name=name)
        return flask.make_response(page, 401)
    now = deps().clock().timestamp()
    flask.session.clear()  # a new session (and CSRF token) for the signed-in operator
    flask.session.permanent = True
    flask.session[sessions.OPERATOR] = name
    flask.session[sessions.SIGNED_IN_AT] = now
    flask.session[sessions.SEEN_AT] = now
    audit(
        deps().db,
        operator=name,
        action="sign_in",
        target=None,
        outcome="ok",
        detail="password rehashed" if result.rehashed else None,
    )
    log.info("console.signed_in", operator=name)
    return flask.redirect(target)


@blueprint.route("/logout", methods=["POST"])
def logout() -> Response:
    name = flask.g.operator
    flask.session.clear()
    audit(deps().db, operator=name, action="sign_out", target=None, outcome="ok")
    log.info("console.signed_out", operator=name)
    flask.flash("Signed out.", "ok")
    return flask.redirect(flask.url_for("auth.login"))
