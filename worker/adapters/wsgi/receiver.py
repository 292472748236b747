"""The notify receiver: a plain WSGI application for Alipay's notifications.

Routes:

* `POST /alipay/notify`: `batch_refund_notify`, enqueued as kind `batch_refund`;
* `POST /alipay/dback-notify`: bank-card return results, enqueued as `dback`;
* `POST /alipay/notify/<merchant>` and `/alipay/dback-notify/<merchant>`: the same for
  one merchant (its id or partner id), for deployments that give each merchant its own
  notify URL; an unknown merchant is 404;
* `POST /alipay/openapi-notify` and `/alipay/openapi-notify/<merchant>`: Alipay's OpenAPI
  notifications (coupon refunds), signature only, no `notify_verify`
  (`worker.adapters.wsgi.openapi_notify`); 404 when the deployment has no OpenAPI app;
* `GET /healthz`: the process answers (200 `ok`);
* `GET /readyz`: 200 only when `ready()` says broker and gateway are reachable;
* `GET /metrics`: prometheus-client exposition.

A notification is answered with exactly the 7 bytes `success` only after it
was authenticated (signature over the values as received, then the gateway's
`notify_verify` answered `true`: only Alipay moves state) and `enqueue` returned, which it
does only once the broker confirmed the message.

Several merchants: a batch notification does not name its partner, so the receiver
finds the merchant by its key. It checks the signature with each candidate merchant's
key (the one of the route, or every merchant, the default first); merchants that
share a key (Alipay signs every RSA merchant's notifications with one key) are told
apart by `notify_verify`, which answers `true` only for the partner the notification
was sent to (`invalid` or `false` for another, so every merchant that signed is asked
before the notification is refused). The notification is enqueued with that partner
id, and the pipeline applies it only to a batch of that merchant. Every other outcome answers
`fail` with a fitting status, so Alipay sends the notification again (about 8
times over 25 hours, same `notify_id`), and logs one `notify.rejected` line
with a stable `reason`. The receiver never logs the sign or the whole form.

The receiver checks only what it needs to authenticate and route a
notification (required fields, `notify_type`). It does not parse
`result_details`: a genuine notification the pipeline cannot parse must be
stored and dead-lettered for an operator, not refused until Alipay gives up.

No framework: five routes and a bounded body read do not need one, and a
plain callable keeps the answer bytes under exact control.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable, Iterable, Mapping, Sequence
from http import HTTPStatus
from typing import Any, Literal
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, Counter, generate_latest

from worker.domain.errors import NotifyFormatError
from worker.mapi import decode_form, is_valid_notify_id

__all__ = [
    "BATCH_REFUND_REQUIRED_FIELDS",
    "DBACK_REQUIRED_FIELDS",
    "NOTIFY_REQUESTS",
    "OPENAPI_NOTIFY_PATH",
    "NotifyKind",
    "Rejected",
    "declared_charset",
    "make_app",
    "normalize_charset",
    "openapi_route",
    "read_body",
]

log = structlog.get_logger(__name__)

NotifyKind = Literal["batch_refund", "dback"]

NOTIFY_REQUESTS = Counter(
    "alipay_notify_requests",
    "Notifications received, by kind and outcome (enqueued or the rejection reason).",
    ["kind", "outcome"],
)

SUCCESS_BODY = b"success"
FAIL_BODY = b"fail"

#: Fields a `batch_refund_notify` must carry, none of them empty (docs/mapi.md, "Notifications").
BATCH_REFUND_REQUIRED_FIELDS = (
    "notify_id",
    "notify_type",
    "sign_type",
    "sign",
    "batch_no",
    "success_num",
    "result_details",
)
BATCH_REFUND_NOTIFY_TYPE = "batch_refund_notify"

#: The bank-card return notification is poorly documented; the one thing every
#: genuine mapi notification carries is its signature, so that is required.
#: When it also carries a `notify_id`, that must pass `notify_verify` too.
DBACK_REQUIRED_FIELDS = ("sign_type", "sign")

_NOTIFY_ROUTES: dict[str, NotifyKind] = {
    "/alipay/notify": "batch_refund",
    "/alipay/dback-notify": "dback",
}


def notify_route(path: str) -> tuple[NotifyKind, str | None] | None:
    """(kind, merchant named by the path or None) of a notification route, else None."""
    kind = _NOTIFY_ROUTES.get(path)
    if kind is not None:
        return kind, None
    base, sep, name = path.rpartition("/")
    kind = _NOTIFY_ROUTES.get(base)
    if kind is None or not sep or not name:
        return None
    return kind, name


OPENAPI_NOTIFY_PATH = "/alipay/openapi-notify"


def openapi_route(path: str) -> str | None:
    """The merchant named by an OpenAPI notification route ("" for none), else None."""
    if path == OPENAPI_NOTIFY_PATH:
        return ""
    base, _, name = path.rpartition("/")
    return name if base == OPENAPI_NOTIFY_PATH and name else None


# Charsets a notification may be declared in, by codecs' canonical name.
# GB2312 is a subset of GBK; GBK decoding reads it identically and also
# accepts the GBK-only characters that mislabelled GB2312 text contains.
_CHARSETS = {"utf-8": "utf-8", "gbk": "gbk", "gb2312": "gbk"}

# Longest value of an untrusted field that goes into a log line.
_LOG_VALUE_MAX = 64

_Headers = list[tuple[str, str]]


class Rejected(Exception):
    """A notification is refused: answer `status` with `fail`, log `reason`."""

    def __init__(self, status: int, reason: str, **details: Any) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.details = details


def normalize_charset(label: str) -> str | None:
    """Return `utf-8` or `gbk` for a charset label naming one of them, else None."""
    try:
        name = codecs.lookup(label.strip().strip("\"'")).name
    except LookupError:
        return None
    return _CHARSETS.get(name)


def declared_charset(content_type: str) -> str | None:
    """The `charset` parameter of a Content-Type header, if any.

    Alipay has been seen sending `application/x-www-form-urlencoded; text/html;
    charset=utf-8`, so parameters are scanned leniently.
    """
    for part in content_type.split(";")[1:]:
        name, sep, value = part.partition("=")
        if sep and name.strip().lower() == "charset":
            return value.strip().strip("\"'")
    return None


def read_body(environ: WSGIEnvironment, max_body_bytes: int) -> bytes:
    """Read the request body, bounded.

    Content-Length is required (411 without it: a chunked body has no bound
    known in advance) and must be at most `max_body_bytes` (413). At most that
    many bytes are read, in bounded reads, stopping at end of input: a body
    shorter than announced is refused (400) instead of waited for.
    """
    raw = str(environ.get("CONTENT_LENGTH") or "").strip()
    if not raw:
        raise Rejected(411, "length_required")
    if not (raw.isascii() and raw.isdigit()):
        raise Rejected(400, "bad_content_length")
    length = int(raw)
    if length > max_body_bytes:
        raise Rejected(413, "body_too_large", content_length=length)
    stream = environ["wsgi.input"]
    chunks: list[bytes] = []
    remaining = length
    while remaining > 0:
        try:
            chunk = stream.read(min(remaining, 65536))
        except (OSError, ValueError) as exc:
            raise Rejected(400, "body_read_error", error=type(exc).__name__) from exc
        if not chunk:
            raise Rejected(400, "truncated_body", content_length=length)
        chunks.append(chunk[:remaining])
        remaining -= len(chunk)
    return b"".join(chunks)


def _loggable(value: str | None) -> str | None:
    if value is None:
        return None
    return value[:_LOG_VALUE_MAX]


def _check_fields(kind: NotifyKind, form: Mapping[str, str]) -> None:
    required = BATCH_REFUND_REQUIRED_FIELDS if kind == "batch_refund" else DBACK_REQUIRED_FIELDS
    missing = [name for name in required if not form.get(name)]
    if missing:
        raise Rejected(400, "missing_field", fields=missing)
    notify_id = form.get("notify_id")
    if notify_id and not is_valid_notify_id(notify_id):
        raise Rejected(400, "bad_notify_id")
    if kind == "batch_refund" and form["notify_type"] != BATCH_REFUND_NOTIFY_TYPE:
        raise Rejected(400, "wrong_notify_type", notify_type=_loggable(form["notify_type"]))


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc)[:200]}"


def make_app(
    *,
    charset: str,
    max_body_bytes: int,
    candidates: Callable[[str | None], Sequence[str] | None],
    verify_signature: Callable[[Mapping[str, str], str, str], bool],
    notify_verify: Callable[[str, str], str],
    enqueue: Callable[[str, dict[str, str], str], None],
    ready: Callable[[], bool],
    openapi: Callable[[WSGIEnvironment, str | None], tuple[int, bytes]] | None = None,
) -> WSGIApplication:
    """Build the receiver around its collaborators.

    `charset` is the request charset the notifications are expected in when
    the Content-Type declares none; `candidates(name)` gives the partner ids a
    notification may be for (`name`: the merchant of the route, or None for every
    merchant, the default first; None back: no such merchant);
    `verify_signature(form, charset, partner)` checks the `sign` of a decoded form
    with that merchant's key, over its values in `charset`, the charset the body was
    decoded in; `notify_verify(notify_id, partner)` returns the gateway's answer
    (`"true"` authenticates; `"false"`/`"invalid"` refute; anything else, or raising,
    means "cannot tell now"); `enqueue(kind, form, partner)` returns only once the
    broker confirmed the message; `ready` tells whether the broker and the gateway
    are reachable; `openapi(environ, name)` answers the OpenAPI route
    (`worker.adapters.wsgi.openapi_notify.make_openapi_handler`; None: no such route).
    """
    default_charset = normalize_charset(charset)
    if default_charset is None:
        raise ValueError(f"unsupported notification charset {charset!r}")
    if max_body_bytes <= 0:
        raise ValueError("max_body_bytes must be positive")

    def authenticate(form: Mapping[str, str], form_charset: str, partners: Sequence[str]) -> str:
        """The partner id the notification is genuinely for, or Rejected."""
        try:
            signed = [p for p in partners if verify_signature(form, form_charset, p)]
        except Exception as exc:
            raise Rejected(503, "signature_check_failed", error=_error_text(exc)) from exc
        if not signed:
            raise Rejected(403, "bad_signature", sign_type=_loggable(form.get("sign_type")))
        notify_id = form.get("notify_id")
        if not notify_id:
            return signed[0]  # only a dback notification gets here without one
        refuted = "invalid"
        for partner in signed:
            try:
                answer = notify_verify(notify_id, partner)
            except Exception as exc:
                raise Rejected(503, "notify_verify_unavailable", error=_error_text(exc)) from exc
            if answer == "true":
                return partner
            if answer not in ("false", "invalid"):
                raise Rejected(503, "notify_verify_unknown")
            # Refuted for this partner only (the gateway answers `invalid`, or `false`, for
            # another partner's notify_id): ask for the next merchant that signed.
            refuted = "false" if answer == "false" else refuted
        raise Rejected(403, f"notify_verify_{refuted}")

    def handle_notify(
        environ: WSGIEnvironment, kind: NotifyKind, name: str | None
    ) -> tuple[int, bytes]:
        bound = log.bind(kind=kind)
        try:
            partners = candidates(name)
            if partners is None:
                raise Rejected(404, "unknown_merchant", merchant=_loggable(name))
            body = read_body(environ, max_body_bytes)
            label = declared_charset(str(environ.get("CONTENT_TYPE") or ""))
            form_charset = default_charset if label is None else normalize_charset(label)
            if form_charset is None:
                raise Rejected(400, "unsupported_charset", charset=_loggable(label))
            try:
                form = decode_form(body, form_charset)
            except NotifyFormatError as exc:
                raise Rejected(400, "malformed_form", error=str(exc)[:200]) from exc
            batch_no = form.get("batch_no") or form.get("refund_batch_no")
            bound = bound.bind(
                notify_id=_loggable(form.get("notify_id")), batch_no=_loggable(batch_no)
            )
            bound.info("notify.received", bytes=len(body), charset=form_charset)
            _check_fields(kind, form)
            partner = authenticate(form, form_charset, partners)
            bound = bound.bind(merchant=partner)
            try:
                enqueue(kind, dict(form), partner)
            except Exception as exc:
                raise Rejected(503, "enqueue_failed", error=_error_text(exc)) from exc
        except Rejected as rejected:
            NOTIFY_REQUESTS.labels(kind=kind, outcome=rejected.reason).inc()
            emit = bound.error if rejected.status >= 500 else bound.warning
            emit(
                "notify.rejected",
                reason=rejected.reason,
                status=rejected.status,
                **rejected.details,
            )
            return rejected.status, FAIL_BODY
        except Exception as exc:
            NOTIFY_REQUESTS.labels(kind=kind, outcome="internal_error").inc()
            bound.error(
                "notify.rejected", reason="internal_error", status=500, error=_error_text(exc)
            )
            return 500, FAIL_BODY
        NOTIFY_REQUESTS.labels(kind=kind, outcome="enqueued").inc()
        bound.info("notify.enqueued")
        return 200, SUCCESS_BODY

    def readiness() -> tuple[int, bytes]:
        try:
            is_ready = ready()
        except Exception as exc:
            log.warning("readyz.check_failed", error=_error_text(exc))
            is_ready = False
        return (200, b"ready") if is_ready else (503, b"not ready")

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = str(environ.get("PATH_INFO") or "/")
        method = str(environ.get("REQUEST_METHOD") or "GET").upper()
        openapi_name = openapi_route(path)
        if openapi_name is not None and openapi is not None:
            if method != "POST":
                NOTIFY_REQUESTS.labels(kind="openapi", outcome="method_not_allowed").inc()
                log.warning(
                    "openapi_notify.rejected", reason="method_not_allowed", method=method[:16]
                )
                return _respond(start_response, 405, FAIL_BODY, [("Allow", "POST")])
            status, body = openapi(environ, openapi_name or None)
            return _respond(start_response, status, body)
        route = notify_route(path)
        if route is not None:
            kind, name = route
            if method != "POST":
                NOTIFY_REQUESTS.labels(kind=kind, outcome="method_not_allowed").inc()
                log.warning(
                    "notify.rejected", kind=kind, reason="method_not_allowed", method=method[:16]
                )
                return _respond(start_response, 405, FAIL_BODY, [("Allow", "POST")])
            status, body = handle_notify(environ, kind, name)
            return _respond(start_response, status, body)
        if path in ("/healthz", "/readyz", "/metrics"):
            if method != "GET":
                return _respond(start_response, 405, b"method not allowed", [("Allow", "GET")])
            if path == "/healthz":
                return _respond(start_response, 200, b"ok")
            if path == "/readyz":
                status, body = readiness()
                return _respond(start_response, status, body)
            metrics = generate_latest()
            return _respond(start_response, 200, metrics, content_type=CONTENT_TYPE_LATEST)
        return _respond(start_response, 404, b"not found")

    return app


def _respond(
    start_response: StartResponse,
    status: int,
    body: bytes,
    extra_headers: _Headers | None = None,
    *,
    content_type: str = "text/plain",
) -> list[bytes]:
    headers: _Headers = [
        ("Content-Type", content_type),
        ("Content-Length", str(len(body))),
        ("Cache-Control", "no-store"),
    ]
    headers.extend(extra_headers or [])
    start_response(f"{status} {HTTPStatus(status).phrase}", headers)
    return [body]
