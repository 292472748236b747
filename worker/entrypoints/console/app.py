"""The console's application factory: `create_app(deps, config)`.

Everything the pages and decisions use comes in `ConsoleDeps` (built by
`refund-worker console` in each gunicorn worker, or by a test); nothing connects at
import time or in `create_app`. Pages are blueprints listed in `BLUEPRINTS`: another
page set is one more entry there, and one more line of the nav in `base.html`.

Every request but `/healthz`, `/login` and static files needs a live session
(`worker.entrypoints.console.sessions`): a GET without one is sent to
`/login?next=<path>`, any other method is answered 403. Every POST carries a CSRF
token (Flask-WTF's `CSRFProtect`); a missing or wrong one is answered 400, logged and
audited. Every answer carries the security headers of `SECURITY_HEADERS`, and pages
`Cache-Control: no-store`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import flask
import structlog
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from worker.adapters.postgres.pool import Database
from worker.domain.errors import BusUnavailable, DatabaseUnavailable
from worker.domain.merchants import Merchants
from worker.entrypoints.console import sessions
from worker.services.ports import RefundQueries

log = structlog.get_logger("worker.console")

Clock = Callable[[], datetime]

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; form-action 'self'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
}
# Endpoints reachable without a session.
PUBLIC_ENDPOINTS = frozenset({"healthz", "static", "auth.login"})

# (import path, attribute) of every blueprint; adding a page set is one line here.
BLUEPRINTS: tuple[tuple[str, str], ...] = (
    ("worker.entrypoints.console.auth", "blueprint"),
    ("worker.entrypoints.console.pages", "blueprint"),
    ("worker.entrypoints.console.decisions", "blueprint"),
    ("worker.entrypoints.console.approvals", "blueprint"),
)


@dataclass(frozen=True)
class BusSettings:
    """Where the bus is: the broker's URL and the exchange every name derives from."""

    amqp_url: str
    exchange: str


@dataclass(frozen=True)
class ConsoleDeps:
    """What the console works with, built outside (see the module docstring)."""

    db: Database
    merchants: Merchants
    clock: Clock
    refund_queries: RefundQueries
    bus: BusSettings
    release_after_seconds: float = 86400.0
    # The mapi gateway the password service's forms are posted to (the operator's browser
    # posts them, so it must be reachable from there).
    gateway_url: str = "http://127.0.0.1:8090/gateway.do"


@dataclass(frozen=True)
class ConsoleConfig:
    secret_key: bytes = field(repr=False)
    secure_cookies: bool = True
    lifetime_seconds: float = sessions.LIFETIME_SECONDS
    idle_seconds: float = sessions.IDLE_SECONDS
    lock_failures: int = 5
    lock_seconds: float = 15 * 60
    dead_letter_peek: int = 200


def deps() -> ConsoleDeps:
    """The running app's dependencies (inside a request)."""
    found: ConsoleDeps = flask.current_app.extensions["console.deps"]
    return found


def config() -> ConsoleConfig:
    found: ConsoleConfig = flask.current_app.extensions["console.config"]
    return found


def current_operator() -> str:
    """The signed-in operator's name (only on pages that need a session)."""
    name: str = flask.g.operator
    return name


def create_app(deps: ConsoleDeps, config: ConsoleConfig) -> flask.Flask:
    """The console as a WSGI application (see the module docstring)."""
    import importlib

    app = flask.Flask(__name__)
    app.config.update(
        SECRET_KEY=config.secret_key,
        SESSION_COOKIE_NAME="refund_console",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_SECURE=config.secure_cookies,
        PERMANENT_SESSION_LIFETIME=int(config.lifetime_seconds),
        SESSION_REFRESH_EACH_REQUEST=True,
        WTF_CSRF_TIME_LIMIT=None,  # a token lives as long as the session it belongs to
        WTF_CSRF_SSL_STRICT=True,
        MAX_CONTENT_LENGTH=64 * 1024,
        TEMPLATES_AUTO_RELOAD=False,
    )
    app.jinja_env.autoescape = True
    app.extensions["console.deps"] = deps
    app.extensions["console.config"] = config
    app.add_url_rule("/healthz", "healthz", _healthz)
    # The session check runs before CSRFProtect's (registered by init_app below), so a
    # POST without a session is a 403, whatever its token.
    app.before_request(_require_session)
    CSRFProtect(app)
    app.after_request(_headers)
    app.register_error_handler(CSRFError, _csrf_refused)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(DatabaseUnavailable, _unavailable)
    app.register_error_handler(BusUnavailable, _unavailable)
    app.jinja_env.filters["age"] = age
    app.jinja_env.filters["when"] = when
    app.jinja_env.tests["hidden_field"] = hidden_field
    app.jinja_env.globals["nav_operator"] = lambda: flask.g.get("operator")
    for module_name, attribute in BLUEPRINTS:
        app.register_blueprint(getattr(importlib.import_module(module_name), attribute))
    return app


def _healthz() -> Response:
    return flask.Response("ok\n", mimetype="text/plain")


def _require_session() -> Response | None:
    structlog.contextvars.unbind_contextvars("operator", "batch_no", "merchant", "refund_id")
    if flask.request.endpoint in ("healthz", "static"):
        return None
    cfg = config()
    now = deps().clock().timestamp()
    name, why = sessions.session_operator(
        flask.session, now, lifetime=cfg.lifetime_seconds, idle=cfg.idle_seconds
    )
    if name is not None and not _still_allowed(name):
        name, why = None, "disabled"
    if name is None and flask.session.get(sessions.OPERATOR):
        log.info("console.session_ended", operator=flask.session.get(sessions.OPERATOR), why=why)
        flask.session.clear()
    if name is not None:
        flask.session[sessions.SEEN_AT] = now
        flask.g.operator = name
        structlog.contextvars.bind_contextvars(operator=name)
        return None
    if flask.request.endpoint in PUBLIC_ENDPOINTS:
        return None
    if flask.request.method in ("GET", "HEAD"):
        target = flask.request.full_path if flask.request.query_string else flask.request.path
        return flask.redirect(flask.url_for("auth.login", next=sessions.safe_next(target)))
    log.warning(
        "console.unauthenticated_post", path=flask.request.path, method=flask.request.method
    )
    return _page(
        "error.html",
        403,
        title="Sign-in required",
        message="This needs a signed-in operator: sign in first.",
    )


def _still_allowed(name: str) -> bool:
    from worker.services.signin import may_act

    return may_act(deps().db, name)


def _headers(response: Response) -> Response:
    for header, value in SECURITY_HEADERS.items():
        response.headers.setdefault(header, value)
    if flask.request.endpoint != "static":
        response.headers["Cache-Control"] = "no-store"
    return response


def _page(template: str, status: int, **context: Any) -> Response:
    response = flask.make_response(flask.render_template(template, **context), status)
    return response


def _csrf_refused(error: CSRFError) -> Response:
    from worker.services.signin import audit

    operator = flask.g.get("operator") or "(anonymous)"
    log.warning(
        "console.csrf_refused",
        path=flask.request.path,
        reason=error.description,
        operator=operator,
    )
    try:
        audit(
            deps().db,
            operator=operator,
            action="csrf",
            target=flask.request.path[:200],
            outcome="refused",
            detail=str(error.description),
        )
    except DatabaseUnavailable:
        log.error("console.audit_unavailable", action="csrf")
    return _page(
        "error.html",
        400,
        title="Form refused",
        message="The form's security token is missing, wrong or from an earlier session"
        f" ({error.description}). Nothing was changed: reload the page and try again.",
    )


def _http_error(error: HTTPException) -> Response:
    code = error.code or 500
    return _page("error.html", code, title=f"{code} {error.name}", message=error.description)


def _unavailable(error: Exception) -> Response:
    log.error("console.unavailable", error=str(error)[:300], path=flask.request.path)
    return _page(
        "error.html",
        503,
        title="Service unavailable",
        message=f"{error}. Try again in a moment.",
    )


# Fields never shown on a page: signatures, keys, whole signed forms and payloads.
HIDDEN_FIELD_PARTS = ("sign", "key", "secret", "password", "form", "payload", "body", "hash")


def hidden_field(name: object) -> bool:
    """Whether a column is left off the pages (see `HIDDEN_FIELD_PARTS`)."""
    text = str(name).lower()
    return any(part in text for part in HIDDEN_FIELD_PARTS)


def when(moment: datetime | None) -> str:
    """A moment for people, in UTC to the second."""
    if moment is None:
        return "-"
    if not isinstance(moment, datetime):
        return str(moment)
    if moment.tzinfo is None:
        return f"{moment:%Y-%m-%d %H:%M:%S}"
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"


def age(seconds: float | int | None) -> str:
    """A duration for people: 42s, 17m, 3.5h, 2.1d."""
    if seconds is None:
        return "-"
    s = float(seconds)
    if s < 120:
        return f"{s:.0f}s"
    if s < 7200:
        return f"{s / 60:.0f}m"
    if s < 172800:
        return f"{s / 3600:.1f}h"
    return f"{s / 86400:.1f}d"
