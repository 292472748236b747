"""The sandbox's WSGI application: the gateway endpoint and the control API.

Routes:

* `GET|POST /gateway.do`: the mapi gateway (refund services, `notify_verify`,
  the refund query `refund_fastpay_query`). The password service
  `refund_fastpay_by_platform_pwd` is answered with HTML: the cashier's
  password page, or its error page (`sandbox.cashier`).
* `POST /cashier/confirm`: the cashier page's form (`ticket`, `account`,
  `payment_password`): executes the batch on the right password, else shows
  the page again or an error page (`sandbox.cashier`).
* `GET /_sandbox/health`: `{"status": "ok"}` once the sandbox serves.
* `GET /_sandbox/info`: partner, sign types accepted, Alipay public key (PEM
  and file path), time factor, process delay, auto-trade settings; every
  partner served under `partners` (`[{"partner", "sign_types"}]`, the
  top-level `partner`, `md5`, `rsa` being the first one's).
* `POST /_sandbox/trades`: create or change paid trades; body
  `{"trade_no", "amount", "status"}` or `{"trades": [...]}`.
* `POST /_sandbox/external_refunds`: record refunds of a trade made outside any
  batch; body `{"trade_no", "count", "amount_each", "reason"?, "partner"?}`,
  answer `{"partner", "trade_no", "batch_nos", "trade"}` (`sandbox.external`).
* `GET|PUT|DELETE /_sandbox/faults`: read, replace, clear the faults.
* `GET|PUT /_sandbox/settings`: read or change `{"refund_limit_mode":
  "refuse"|"skip", "notify_verify_seconds": N, "payment_password": TEXT}`
  (any of the keys; the password is write-only: reading shows
  `payment_password_default`, whether it is still `sandbox-pay-123456`).
* `GET|PUT /_sandbox/clock`: read or set `{"offset_seconds": N}`.
* `GET /_sandbox/ledger[?batch_no=..][&trade_no=..][&partner=..]`: the books.
* `GET /_sandbox/summary`: counts and red flags (`double_executed`, `over_refunded`);
  under `openapi` the OpenAPI gateway's (`sandbox.openapi.books`).
* `POST /openapi/gateway.do`: the OpenAPI gateway (form body, UTF-8; the four
  refund methods of `docs/openapi.md`), answered with signed JSON
  (`sandbox.openapi`).
* `POST /_sandbox/openapi/trades`, `POST /_sandbox/openapi/envelopes`: create
  OpenAPI trades and red envelopes; `GET /_sandbox/openapi/ledger`: the
  OpenAPI books (`sandbox.openapi.control`). `GET /_sandbox/info` shows the
  OpenAPI key and apps under `openapi`.

Bad input never crashes the server: bodies above 2 MiB get 413 (and the
connection is closed), unknown paths 404, wrong methods 405, bad control
JSON 400 with `{"error": ...}`, and anything unexpected is logged and
answered 500.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import time
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any, Final
from urllib.parse import parse_qs

import structlog

from sandbox.cashier import CONFIRM_PATH
from sandbox.service import SandboxService
from worker.domain.errors import ConfigError

__all__ = ["MAX_BODY_BYTES", "OPENAPI_PATH", "SandboxApp"]

log = structlog.get_logger(__name__)

MAX_BODY_BYTES: Final = 2 * 1024 * 1024
_JSON: Final = "application/json"
OPENAPI_PATH: Final = "/openapi/gateway.do"
_MAX_DRAIN_BYTES: Final = 4 * MAX_BODY_BYTES

StartResponse = Callable[..., Any]
Environ = dict[str, Any]


class _HttpError(Exception):
    def __init__(self, status: int, message: str, *, close: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.close = close


class SandboxApp:
    """WSGI callable serving one `SandboxService`."""

    def __init__(self, service: SandboxService) -> None:
        self.service = service
        self._routes: dict[str, dict[str, Callable[[Environ], Any]]] = {
            "/_sandbox/health": {"GET": lambda env: {"status": "ok"}},
            "/_sandbox/info": {"GET": lambda env: service.info()},
            "/_sandbox/trades": {"POST": self._trades},
            "/_sandbox/external_refunds": {"POST": self._external_refunds},
            "/_sandbox/settings": {
                "GET": lambda env: service.settings(),
                "PUT": self._put_settings,
            },
            "/_sandbox/faults": {
                "GET": lambda env: service.faults.snapshot(),
                "PUT": self._put_faults,
                "DELETE": lambda env: service.clear_faults(),
            },
            "/_sandbox/clock": {"GET": lambda env: service.clock_view(), "PUT": self._put_clock},
            "/_sandbox/ledger": {"GET": self._ledger},
            "/_sandbox/summary": {"GET": lambda env: service.summary()},
            "/_sandbox/openapi/trades": {
                "POST": lambda env: self._control(service.openapi_trades, env)
            },
            "/_sandbox/openapi/envelopes": {
                "POST": lambda env: self._control(service.openapi_envelopes, env)
            },
            "/_sandbox/openapi/ledger": {"GET": lambda env: service.openapi_ledger()},
        }

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        try:
            if path == "/gateway.do":
                return self._gateway(environ, start_response, method)
            if path == OPENAPI_PATH:
                return self._openapi(environ, start_response, method)
            if path == CONFIRM_PATH:
                return self._confirm(environ, start_response, method)
            handlers = self._routes.get(path)
            if handlers is None:
                raise _HttpError(404, f"no such path {path[:100]!r}")
            handler = handlers.get(method)
            if handler is None:
                raise _HttpError(405, f"{method} is not allowed on {path}")
            return _respond(start_response, 200, json.dumps(handler(environ)).encode(), _JSON)
        except _HttpError as exc:
            body = json.dumps({"error": exc.message}).encode()
            return _respond(start_response, exc.status, body, _JSON, close=exc.close)
        except ConnectionResetError:
            raise
        except Exception:
            log.exception("sandbox.request.crashed", path=path[:100], method=method)
            body = json.dumps({"error": "internal error"}).encode()
            return _respond(start_response, 500, body, _JSON, close=True)

    # -- gateway ----------------------------------------------------------------

    def _gateway(
        self, environ: Environ, start_response: StartResponse, method: str
    ) -> Iterable[bytes]:
        if method not in ("GET", "POST"):
            raise _HttpError(405, "the gateway takes GET and POST")
        try:
            query = environ.get("QUERY_STRING", "").encode("latin-1")
        except UnicodeEncodeError:
            raise _HttpError(400, "query string is not bytes") from None
        body = _read_body(environ) if method == "POST" else b""
        answer = self.service.gateway(query, body, environ.get("CONTENT_TYPE", "") or "")
        if answer.delay > 0:
            time.sleep(answer.delay)
        if answer.reset:
            _reset(environ)
        return _respond(
            start_response, answer.status, answer.body, answer.content_type, answer.headers
        )

    def _openapi(
        self, environ: Environ, start_response: StartResponse, method: str
    ) -> Iterable[bytes]:
        if method != "POST":
            raise _HttpError(405, f"{OPENAPI_PATH} takes POST")
        try:
            query = environ.get("QUERY_STRING", "").encode("latin-1")
        except UnicodeEncodeError:
            raise _HttpError(400, "query string is not bytes") from None
        body = _read_body(environ)
        answer = self.service.openapi_gateway(query, body, environ.get("CONTENT_TYPE", "") or "")
        if answer.delay > 0:
            time.sleep(answer.delay)
        if answer.reset:
            _reset(environ)
        return _respond(start_response, answer.status, answer.body, answer.content_type)

    def _control(self, handler: Callable[[Any], Any], environ: Environ) -> Any:
        try:
            return handler(_read_json(environ))
        except ValueError as exc:
            raise _HttpError(400, str(exc)) from None

    def _confirm(
        self, environ: Environ, start_response: StartResponse, method: str
    ) -> Iterable[bytes]:
        if method != "POST":
            raise _HttpError(405, f"{CONFIRM_PATH} takes POST")
        body = _read_body(environ)
        answer = self.service.cashier_confirm(body, environ.get("CONTENT_TYPE", "") or "")
        return _respond(
            start_response, answer.status, answer.body, answer.content_type, answer.headers
        )

    # -- control ----------------------------------------------------------------

    def _trades(self, environ: Environ) -> Any:
        data = _read_json(environ)
        batch = data.get("trades") if isinstance(data, dict) and "trades" in data else None
        entries = batch if isinstance(batch, list) else [data]
        if not all(isinstance(entry, dict) for entry in entries):
            raise _HttpError(400, 'expected a trade object or {"trades": [...]}')
        try:
            created = [self.service.create_trade(entry) for entry in entries]
        except ValueError as exc:
            raise _HttpError(400, str(exc)) from None
        return created[0] if batch is None else {"trades": created}

    def _external_refunds(self, environ: Environ) -> Any:
        try:
            return self.service.add_external_refunds(_read_json(environ))
        except ValueError as exc:
            raise _HttpError(400, str(exc)) from None

    def _put_settings(self, environ: Environ) -> Any:
        try:
            return self.service.update_settings(_read_json(environ))
        except (ValueError, ConfigError) as exc:
            raise _HttpError(400, str(exc)) from None

    def _put_faults(self, environ: Environ) -> Any:
        try:
            return self.service.set_faults(_read_json(environ))
        except ConfigError as exc:
            raise _HttpError(400, str(exc)) from None

    def _put_clock(self, environ: Environ) -> Any:
        data = _read_json(environ)
        if not isinstance(data, dict) or "offset_seconds" not in data:
            raise _HttpError(400, 'expected {"offset_seconds": N}')
        try:
            return self.service.set_clock_offset(data["offset_seconds"])
        except ValueError as exc:
            raise _HttpError(400, str(exc)) from None

    def _ledger(self, environ: Environ) -> Any:
        query = parse_qs(environ.get("QUERY_STRING", ""))
        batch_no = query.get("batch_no", [None])[0]
        trade_no = query.get("trade_no", [None])[0]
        partner = query.get("partner", [None])[0]
        return self.service.ledger_view(batch_no=batch_no, trade_no=trade_no, partner=partner)


def _respond(
    start_response: StartResponse,
    status: int,
    body: bytes,
    content_type: str,
    extra: Iterable[tuple[str, str]] = (),
    *,
    close: bool = False,
) -> list[bytes]:
    headers = [("Content-Type", content_type), ("Content-Length", str(len(body))), *extra]
    if close:
        headers.append(("Connection", "close"))
    start_response(f"{status} {_phrase(status)}", headers)
    return [body]


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _read_body(environ: Environ) -> bytes:
    """The request body, at most MAX_BODY_BYTES (413 beyond, with the connection closed)."""
    length_text = environ.get("CONTENT_LENGTH") or ""
    stream = environ["wsgi.input"]
    if length_text:
        if not length_text.isdigit():
            raise _HttpError(400, "Content-Length is not a number", close=True)
        length = int(length_text)
        if length > MAX_BODY_BYTES:
            _drain(stream, length)
            raise _HttpError(413, f"body larger than {MAX_BODY_BYTES} bytes", close=True)
        data: bytes = stream.read(length)
        return data
    data = stream.read(MAX_BODY_BYTES + 1)
    if len(data) > MAX_BODY_BYTES:
        raise _HttpError(413, f"body larger than {MAX_BODY_BYTES} bytes", close=True)
    return data


def _drain(stream: Any, length: int) -> None:
    """Read and drop a moderately oversized body so the client gets to read the 413.

    Bodies far beyond the limit are not read at all: the connection is closed
    under the client instead.
    """
    if length > _MAX_DRAIN_BYTES:
        return
    left = length
    while left > 0:
        chunk = stream.read(min(left, 65536))
        if not chunk:
            return
        left -= len(chunk)


def _read_json(environ: Environ) -> Any:
    body = _read_body(environ)
    try:
        return json.loads(body or b"null")
    except (ValueError, UnicodeDecodeError):
        raise _HttpError(400, "body is not JSON") from None


def _reset(environ: Environ) -> None:
    """Reset the client's TCP connection: RST, no answer at all.

    With SO_LINGER set to 0, closing the last descriptor of a TCP socket
    sends RST instead of FIN. The server's socket object must stay usable
    (it closes and counts it later), so its descriptor is not closed but
    replaced (`dup2`) by one end of a dead socket pair: that drops the TCP
    socket's last descriptor, and the server's later writes fail with EPIPE.
    Raises ConnectionResetError so the server drops the request quietly.
    """
    sock = environ.get("gunicorn.socket")
    if isinstance(sock, socket.socket) and sock.fileno() >= 0:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        stand_in, peer = socket.socketpair()
        peer.close()
        try:
            os.dup2(stand_in.fileno(), sock.fileno())
        finally:
            stand_in.close()
    raise ConnectionResetError(104, "connection reset on purpose (reset_after_accept)")
