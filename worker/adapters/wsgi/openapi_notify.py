"""The receiver's OpenAPI route: `POST /alipay/openapi-notify[/<merchant>]`.

Alipay's OpenAPI notifications (the coupon refund's `fund_stdtrustee_refund.success`,
and whatever else a payment's own notify_url receives, docs/openapi.md) are a UTF-8
form `POST`. There is no `notify_verify` on OpenAPI: the signature alone authenticates,
so the route checks it with the Alipay public key of each candidate merchant's app (the
route's merchant, or every merchant with an app, the default first) over every
parameter except `sign` and `sign_type`, empty values kept
(`worker.openapi.notify.verify_notification`).

A notification whose signature verified is stored durably (`store`, keyed by
`notify_id`: a resend stores nothing new), handed to the notification job (`enqueue`,
which returns once the broker confirmed it), and answered exactly `success`. Anything
else is answered `fail` with a 4xx/5xx status, so Alipay sends it again, and nothing is
stored: a bad or missing signature is logged `openapi_notify.bad_signature` with its
notify_id (never the sign, never the form).

The route does not read the notification's business fields: a genuine notification
the pipeline cannot match is stored with its outcome, not refused until Alipay gives up.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any
from wsgiref.types import WSGIEnvironment

import structlog

from worker.adapters.wsgi.receiver import (
    NOTIFY_REQUESTS,
    Rejected,
    declared_charset,
    normalize_charset,
    read_body,
)
from worker.domain.errors import NotifyFormatError
from worker.mapi import decode_form, is_valid_notify_id
from worker.openapi.notify import NOTIFY_ANSWER

__all__ = ["OpenApiNotifyHandler", "make_openapi_handler"]

log = structlog.get_logger(__name__)

KIND = "openapi"
FORM_MEDIA_TYPE = "application/x-www-form-urlencoded"
_LOG_VALUE_MAX = 64

# (environ, merchant named by the route or None) -> (status, body)
OpenApiNotifyHandler = Callable[[WSGIEnvironment, str | None], tuple[int, bytes]]


def _loggable(value: str | None) -> str | None:
    return None if value is None else value[:_LOG_VALUE_MAX]


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc)[:200]}"


def make_openapi_handler(
    *,
    max_body_bytes: int,
    candidates: Callable[[str | None], Sequence[str] | None],
    verify: Callable[[Mapping[str, str], str], bool],
    store: Callable[[dict[str, str], str], None],
    enqueue: Callable[[dict[str, str], str], None],
) -> OpenApiNotifyHandler:
    """The route's handler around its collaborators.

    `candidates(name)`: the partner ids of the merchants with an OpenAPI app the
    notification may be for (`name` the route's merchant, or None for all, the default
    first; None back: no such merchant, or it has no app); `verify(form, partner)`:
    whether that merchant's app's Alipay public key verifies the form; `store(form,
    partner)` keeps it durably (a second time is a no-op); `enqueue(form, partner)`
    returns once the broker confirmed the job.
    """
    if max_body_bytes <= 0:
        raise ValueError("max_body_bytes must be positive")

    def authenticate(form: Mapping[str, str], partners: Sequence[str]) -> str:
        if not form.get("sign"):
            raise Rejected(403, "bad_signature", problem="missing_sign")
        try:
            signed = [p for p in partners if verify(form, p)]
        except Exception as exc:
            raise Rejected(503, "signature_check_failed", error=_error_text(exc)) from exc
        if not signed:
            raise Rejected(
                403,
                "bad_signature",
                problem="not_verified",
                sign_type=_loggable(form.get("sign_type")),
            )
        # Apps sharing a key all verify: the job finds the refund's own merchant by its
        # out_request_no and checks that merchant's key too (worker.services).
        return signed[0]

    def handle(environ: WSGIEnvironment, name: str | None) -> tuple[int, bytes]:
        bound = log.bind(kind=KIND)
        try:
            partners = candidates(name)
            if partners is None:
                raise Rejected(404, "unknown_merchant", merchant=_loggable(name))
            content_type = str(environ.get("CONTENT_TYPE") or "")
            media = content_type.split(";", 1)[0].strip().lower()
            if media != FORM_MEDIA_TYPE:
                raise Rejected(415, "wrong_content_type", content_type=_loggable(content_type))
            body = read_body(environ, max_body_bytes)
            label = declared_charset(content_type)
            if label is not None and normalize_charset(label) != "utf-8":
                raise Rejected(400, "unsupported_charset", charset=_loggable(label))
            try:
                form = decode_form(body, "utf-8")
            except NotifyFormatError as exc:
                raise Rejected(400, "malformed_form", error=str(exc)[:200]) from exc
            notify_id = form.get("notify_id")
            bound = bound.bind(
                notify_id=_loggable(notify_id),
                out_request_no=_loggable(form.get("out_request_no")),
                notify_type=_loggable(form.get("notify_type")),
            )
            bound.info("openapi_notify.received", bytes=len(body))
            if not notify_id:
                raise Rejected(400, "missing_field", fields=["notify_id"])
            if not is_valid_notify_id(notify_id):
                raise Rejected(400, "bad_notify_id")
            partner = authenticate(form, partners)
            bound = bound.bind(merchant=partner)
            try:
                store(dict(form), partner)
            except Exception as exc:
                raise Rejected(503, "store_failed", error=_error_text(exc)) from exc
            try:
                enqueue(dict(form), partner)
            except Exception as exc:
                raise Rejected(503, "enqueue_failed", error=_error_text(exc)) from exc
        except Rejected as rejected:
            NOTIFY_REQUESTS.labels(kind=KIND, outcome=rejected.reason).inc()
            details: dict[str, Any] = dict(rejected.details)
            if rejected.reason == "bad_signature":
                bound.warning("openapi_notify.bad_signature", status=rejected.status, **details)
            emit = bound.error if rejected.status >= 500 else bound.warning
            emit(
                "openapi_notify.rejected",
                reason=rejected.reason,
                status=rejected.status,
                **details,
            )
            return rejected.status, b"fail"
        except Exception as exc:
            NOTIFY_REQUESTS.labels(kind=KIND, outcome="internal_error").inc()
            bound.error(
                "openapi_notify.rejected",
                reason="internal_error",
                status=500,
                error=_error_text(exc),
            )
            return 500, b"fail"
        NOTIFY_REQUESTS.labels(kind=KIND, outcome="enqueued").inc()
        bound.info("openapi_notify.enqueued")
        return 200, NOTIFY_ANSWER.encode("ascii")

    return handle
