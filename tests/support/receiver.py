"""The notify receiver's WSGI app, driven in-process with recording fakes, for unit tests.

`Fakes` stands in for the receiver's collaborators (partner candidates,
signature check, `notify_verify`, queue, readiness) and records their calls
in order; `Fakes().app()` is `worker.adapters.wsgi.receiver.make_app` wired to
them. `call` drives a WSGI app with one request and returns its `Reply`
(`CountingStream` checks the body is never read past its length,
`FailingStream` times out); `post_form` posts a UTF-8 form. Moved out of
`tests/unit/test_receiver.py`, shared with
`tests/unit/test_openapi_notify_route.py`.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from wsgiref.types import WSGIApplication
from wsgiref.util import setup_testing_defaults

from worker.adapters.wsgi.receiver import make_app
from worker.mapi import encode_form

__all__ = [
    "MAX_BODY",
    "PARTNER",
    "CountingStream",
    "FailingStream",
    "Fakes",
    "Reply",
    "call",
    "post_form",
]

PARTNER = "2088000000000001"
MAX_BODY = 4096


@dataclass
class Fakes:
    """Collaborators that record their calls, in order."""

    signature_ok: bool = True
    verify_answer: str = "true"
    ready_answer: bool = True
    verify_error: Exception | None = None
    signature_error: Exception | None = None
    enqueue_error: Exception | None = None
    ready_error: Exception | None = None
    calls: list[str] = field(default_factory=list)
    signed_forms: list[dict[str, str]] = field(default_factory=list)
    signed_charsets: list[str] = field(default_factory=list)
    verified_ids: list[str] = field(default_factory=list)
    enqueued: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    partners: tuple[str, ...] = (PARTNER,)  # every merchant, the default first
    signers: tuple[str, ...] | None = None  # whose key the signature verifies with (None: all)
    verify_true_for: str | None = None  # notify_verify: "true" only for this one, else "invalid"
    checked_partners: list[str] = field(default_factory=list)
    verified_partners: list[str] = field(default_factory=list)
    enqueued_partners: list[str] = field(default_factory=list)

    def candidates(self, name: str | None) -> tuple[str, ...] | None:
        if name is None:
            return self.partners
        return (name,) if name in self.partners else None

    def verify_signature(self, form: Mapping[str, str], charset: str, partner: str) -> bool:
        self.calls.append("signature")
        self.checked_partners.append(partner)
        if self.signers is not None and partner not in self.signers:
            return False
        self.signed_charsets.append(charset)
        self.signed_forms.append(dict(form))
        if self.signature_error is not None:
            raise self.signature_error
        return self.signature_ok

    def notify_verify(self, notify_id: str, partner: str) -> str:
        self.calls.append("notify_verify")
        self.verified_ids.append(notify_id)
        self.verified_partners.append(partner)
        if self.verify_error is not None:
            raise self.verify_error
        if self.verify_true_for is not None:
            return "true" if partner == self.verify_true_for else "invalid"
        return self.verify_answer

    def enqueue(self, kind: str, form: dict[str, str], partner: str) -> None:
        self.calls.append("enqueue")
        if self.enqueue_error is not None:
            raise self.enqueue_error
        self.enqueued.append((kind, form))
        self.enqueued_partners.append(partner)

    def ready(self) -> bool:
        if self.ready_error is not None:
            raise self.ready_error
        return self.ready_answer

    def app(self, *, charset: str = "utf-8", **overrides: Any) -> WSGIApplication:
        callables: dict[str, Any] = {
            "candidates": self.candidates,
            "verify_signature": self.verify_signature,
            "notify_verify": self.notify_verify,
            "enqueue": self.enqueue,
            "ready": self.ready,
        }
        callables.update(overrides)
        return make_app(charset=charset, max_body_bytes=MAX_BODY, **callables)


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


class CountingStream(io.BytesIO):
    """A request body that remembers how many bytes were asked for."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.requested = 0

    def read(self, size: int | None = -1) -> bytes:
        assert size is not None and size >= 0, "the body must never be read unbounded"
        self.requested += size
        return super().read(size)


class FailingStream(io.RawIOBase):
    def read(self, size: int = -1) -> bytes:
        raise TimeoutError("timed out")


def call(
    app: WSGIApplication,
    *,
    method: str = "POST",
    path: str = "/alipay/notify",
    body: bytes = b"",
    content_type: str | None = "application/x-www-form-urlencoded",
    content_length: str | None = None,
    stream: Any = None,
) -> Reply:
    environ: dict[str, Any] = {}
    setup_testing_defaults(environ)
    environ["REQUEST_METHOD"] = method
    environ["PATH_INFO"] = path
    environ["wsgi.input"] = stream if stream is not None else CountingStream(body)
    if content_type is not None:
        environ["CONTENT_TYPE"] = content_type
    length = str(len(body)) if content_length is None else content_length
    if length != "":
        environ["CONTENT_LENGTH"] = length
    captured: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        captured["status"] = status
        captured["headers"] = headers
        return lambda data: None

    chunks = b"".join(app(environ, start_response))
    headers = dict(captured["headers"])
    assert int(headers["Content-Length"]) == len(chunks)
    return Reply(int(captured["status"].split()[0]), headers, chunks)


def post_form(app: WSGIApplication, form: Mapping[str, str], **kwargs: Any) -> Reply:
    return call(app, body=encode_form(form, "utf-8"), **kwargs)
