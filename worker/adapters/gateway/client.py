"""HTTP adapter for the Alipay mapi gateway (requests).

The one module that talks HTTP to the gateway. Its main job is to translate
what the network did into the two outcomes that decide whether a batch may be
renumbered:

* `GatewayNotSent`: the request certainly never reached the gateway (the TCP
  connection could not be opened: refused, DNS failure, connect timeout, or
  the URL is unusable). Renumbering the batch is safe.
* `GatewayOutcomeUnknown`: the request may have been received (read timeout,
  connection reset or closed after sending, any non-200 status, an answer the
  protocol parser cannot classify). The batch must be retried with the *same*
  `batch_no`.

Anything not proven to be "not sent" is "unknown": a wrong "not sent" could
pay a refund twice, a wrong "unknown" only delays it.

Every request has one overall deadline, `max_request_seconds` (connect + 2 x
read timeout), for connecting, sending, the headers and the body together: the
read timeout alone bounds each socket read, and a server that trickles its
headers or body would otherwise hold the caller for as long as it likes. A
watchdog timer shuts the request's connection down when the deadline passes
(`worker.adapters.gateway.deadline`), and the body is not read further once it has passed; the
outcome is then unknown (`deadline_exceeded`). The submission lease is derived
from this deadline (`worker.entrypoints.runtime.submit_lease_for`).

The transport never retries on its own (urllib3 `Retry(total=0, read=False)`):
whether to resend a POST that might have been received is the caller's
decision. Logs carry `batch_no`, latency and outcome, never the sign, the
detail_data, the parameters or the response body.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import requests
import structlog
from prometheus_client import Histogram
from urllib3.exceptions import MaxRetryError, NewConnectionError, ReadTimeoutError
from urllib3.util.timeout import Timeout

from worker.adapters.gateway.deadline import Deadline, gateway_session
from worker.domain.errors import GatewayError, GatewayNotSent, GatewayOutcomeUnknown
from worker.mapi import (
    NotifyVerifyAnswer,
    SyncResponse,
    SyncStatus,
    encode_form,
    gateway_url_with_charset,
    notify_verify_params,
    parse_notify_verify,
    parse_sync_response,
)

__all__ = [
    "GATEWAY_REQUEST_SECONDS",
    "GatewayClient",
    "classify_request_exception",
    "max_request_seconds",
]

log = structlog.get_logger(__name__)

GATEWAY_REQUEST_SECONDS = Histogram(
    "alipay_gateway_request_seconds",
    "Latency of requests to the Alipay gateway, by merchant (partner id), operation and outcome.",
    ["merchant", "operation", "outcome"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0),
)

# A synchronous answer is a few hundred bytes of XML and a notify_verify
# answer one word; anything far larger is not the gateway talking.
MAX_SUBMIT_RESPONSE_BYTES = 64 * 1024
MAX_VERIFY_RESPONSE_BYTES = 4 * 1024

# requests raises these before opening any connection.
_NOT_SENT_URL_ERRORS = (
    requests.exceptions.InvalidURL,
    requests.exceptions.MissingSchema,
    requests.exceptions.InvalidSchema,
    requests.exceptions.URLRequired,
)


class ResponseTooLarge(Exception):
    """The response body exceeded the size the operation allows."""


class ResponseTooSlow(Exception):
    """The response was still coming in when the request's deadline passed."""


def max_request_seconds(connect_timeout: float, read_timeout: float) -> float:
    """The longest one request may take, connecting to the last byte of the body."""
    return connect_timeout + 2 * read_timeout


def classify_request_exception(exc: requests.RequestException) -> GatewayError:
    """Map a requests exception to `GatewayNotSent` or `GatewayOutcomeUnknown`.

    Rule: only a failure to open the connection proves nothing was sent.
    requests' `ConnectionError` covers both sides of that line, so look at the
    urllib3 cause: a `MaxRetryError` whose reason is `NewConnectionError`
    (refused, unreachable, DNS; `NameResolutionError` is a subclass) happened
    in `connect()`. `ConnectTimeout` is only raised for a timeout while
    connecting. Everything else (`ReadTimeout`, `ProtocolError` wrapping
    `RemoteDisconnected` or `ConnectionResetError`, TLS errors, proxy errors,
    chunked-encoding errors) may come after the request left: unknown.
    """
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return GatewayNotSent("connect_timeout")
    if isinstance(exc, _NOT_SENT_URL_ERRORS):
        return GatewayNotSent("invalid_url")
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return GatewayOutcomeUnknown("read_timeout")
    if isinstance(exc, requests.exceptions.SSLError):
        return GatewayOutcomeUnknown("tls_error")
    if isinstance(exc, requests.exceptions.ProxyError):
        return GatewayOutcomeUnknown("proxy_error")
    if isinstance(exc, requests.exceptions.ConnectionError):
        cause = exc.args[0] if exc.args else None
        if isinstance(cause, MaxRetryError) and isinstance(cause.reason, NewConnectionError):
            return GatewayNotSent("connect_failed")
        if isinstance(cause, ReadTimeoutError):
            # requests reports a timeout while streaming the body this way.
            return GatewayOutcomeUnknown("read_timeout")
        return GatewayOutcomeUnknown("connection_lost")
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return GatewayOutcomeUnknown("connection_lost")
    return GatewayOutcomeUnknown(f"request_failed:{type(exc).__name__}")


def _reason(error: GatewayError) -> str:
    return str(error).split(":", 1)[0]


class GatewayClient:
    """A pooled HTTP client for one gateway URL, partner and charset.

    One `requests.Session` is kept for connection reuse; cookies are refused
    (the gateway has no session state and a shared jar is shared mutable
    state between threads). Every request carries explicit connect and read
    timeouts and the overall deadline `max_request_seconds`. `pool_size`
    should be at least the number of threads sharing the client.
    """

    def __init__(
        self,
        url: str,
        *,
        charset: str,
        partner: str,
        connect_timeout: float,
        read_timeout: float,
        pool_size: int = 10,
    ) -> None:
        self._url = url
        self._charset = charset
        self._partner = partner
        self._max_request_seconds = max_request_seconds(connect_timeout, read_timeout)
        self._timeout = Timeout(
            connect=connect_timeout, read=read_timeout, total=self._max_request_seconds
        )
        self._session = gateway_session(pool_size)

    @property
    def max_request_seconds(self) -> float:
        """The deadline of one request, headers and body (connect + 2 x read timeout)."""
        return self._max_request_seconds

    def close(self) -> None:
        """Close pooled connections."""
        self._session.close()

    def __enter__(self) -> GatewayClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def submit(self, params: Mapping[str, str]) -> SyncResponse:
        """POST signed request parameters; return the parsed synchronous answer.

        The body is `params` form-encoded in the request charset, sent to
        `<gateway>?_input_charset=<charset>`. Returns ACCEPTED, PROCESSING or
        REFUSED answers; raises `GatewayNotSent` or `GatewayOutcomeUnknown`
        (see the module docstring) for everything else. Parameters that cannot
        be encoded in the charset raise `ProtocolError` before anything is sent.
        """
        batch_no = params.get("batch_no")
        url = gateway_url_with_charset(self._url, self._charset)
        body = encode_form(params, self._charset)
        headers = {
            "Content-Type": f"application/x-www-form-urlencoded; charset={self._charset}",
            "Accept": "text/xml, application/xml, */*",
        }
        started = time.monotonic()
        status: int | None = None
        try:
            try:
                status, content = exchange(
                    self._session,
                    "POST",
                    url,
                    timeout=self._timeout,
                    max_seconds=self._max_request_seconds,
                    limit=MAX_SUBMIT_RESPONSE_BYTES,
                    data=body,
                    headers=headers,
                )
            except DeadlineExceeded as exc:
                raise GatewayOutcomeUnknown("deadline_exceeded") from exc
            except ResponseTooLarge as exc:
                raise GatewayOutcomeUnknown("response_too_large") from exc
            except requests.RequestException as exc:
                raise classify_request_exception(exc) from exc
            if status != 200:
                raise GatewayOutcomeUnknown(f"http_{status}")
            sync = parse_sync_response(content)
            if sync.status is SyncStatus.UNKNOWN:
                raise GatewayOutcomeUnknown("unparseable_response")
        except GatewayError as error:
            outcome = "not_sent" if isinstance(error, GatewayNotSent) else "unknown"
            self._record("submit", outcome, started)
            log.warning(
                "gateway.request",
                operation="submit",
                batch_no=batch_no,
                outcome=outcome,
                reason=_reason(error),
                http_status=status,
                latency_ms=_ms_since(started),
            )
            raise
        outcome = sync.status.name.lower()
        self._record("submit", outcome, started)
        emit = log.warning if sync.status is SyncStatus.REFUSED else log.info
        emit(
            "gateway.request",
            operation="submit",
            batch_no=batch_no,
            outcome=outcome,
            error_code=sync.error,
            http_status=status,
            latency_ms=_ms_since(started),
        )
        return sync

    def notify_verify(self, notify_id: str, partner: str | None = None) -> NotifyVerifyAnswer:
        """Ask the gateway whether `notify_id` is a notification it sent to `partner`
        (default: the client's partner).

        `GET <gateway>?service=notify_verify&partner=..&notify_id=..`. Returns
        the parsed answer (`"true"` is the only one that authenticates).
        Network trouble or a non-200 status raises `GatewayError`, so the
        receiver answers something other than `success` and Alipay resends.
        """
        started = time.monotonic()
        status: int | None = None
        try:
            try:
                status, content = exchange(
                    self._session,
                    "GET",
                    self._url,
                    timeout=self._timeout,
                    max_seconds=self._max_request_seconds,
                    limit=MAX_VERIFY_RESPONSE_BYTES,
                    params=notify_verify_params(partner or self._partner, notify_id),
                )
            except DeadlineExceeded as exc:
                raise GatewayError("deadline_exceeded") from exc
            except ResponseTooLarge as exc:
                raise GatewayError("bad_response") from exc
            except requests.RequestException as exc:
                raise GatewayError(_reason(classify_request_exception(exc))) from exc
            if status != 200:
                raise GatewayError(f"http_{status}")
        except GatewayError as error:
            self._record("notify_verify", "error", started, partner)
            log.warning(
                "gateway.request",
                operation="notify_verify",
                notify_id=notify_id,
                outcome="error",
                reason=_reason(error),
                http_status=status,
                latency_ms=_ms_since(started),
            )
            raise
        answer: NotifyVerifyAnswer = parse_notify_verify(content)
        self._record("notify_verify", answer, started, partner)
        log.info(
            "gateway.request",
            operation="notify_verify",
            notify_id=notify_id,
            outcome=answer,
            http_status=status,
            latency_ms=_ms_since(started),
        )
        return answer

    def _record(
        self, operation: str, outcome: str, started: float, partner: str | None = None
    ) -> None:
        GATEWAY_REQUEST_SECONDS.labels(
            merchant=partner or self._partner, operation=operation, outcome=outcome
        ).observe(time.monotonic() - started)


def _ms_since(started: float) -> int:
    return round((time.monotonic() - started) * 1000)


class DeadlineExceeded(Exception):
    """The request's overall deadline passed before its answer was read."""


def exchange(
    session: requests.Session,
    method: str,
    url: str,
    *,
    timeout: Timeout,
    max_seconds: float,
    limit: int,
    **request: Any,
) -> tuple[int, bytes]:
    """One request to the gateway within one overall deadline: (status, body).

    The body is read (at most `limit` bytes) only for a 200; another status comes back
    with an empty body. Raises `DeadlineExceeded`, `ResponseTooLarge`, or the requests
    exception as it came: whether the request may have reached the gateway is for the
    caller to judge (`classify_request_exception`). Never redirects, never retries.
    """
    deadline = Deadline(max_seconds)
    try:
        with (
            deadline,
            session.request(
                method,
                url,
                timeout=timeout,  # type: ignore[arg-type]  # urllib3 Timeout
                allow_redirects=False,
                stream=True,
                **request,
            ) as response,
        ):
            if response.status_code != 200:
                return response.status_code, b""
            return 200, read_bounded(response, limit, deadline)
    except ResponseTooSlow as exc:
        raise DeadlineExceeded() from exc
    except requests.RequestException as exc:
        if deadline.fired:
            raise DeadlineExceeded() from exc
        raise


def read_bounded(response: requests.Response, limit: int, deadline: Deadline) -> bytes:
    """Read at most `limit` bytes of the body, and nothing once the deadline has passed.

    The deadline is checked before every read; a read already blocked when it passes
    is ended by the deadline's watchdog shutting the connection down.
    """
    chunks: list[bytes] = []
    size = 0
    pieces = response.iter_content(chunk_size=4096)
    while True:
        if deadline.passed():
            raise ResponseTooSlow()
        chunk = next(pieces, None)
        if chunk is None:
            break
        size += len(chunk)
        if size > limit:
            raise ResponseTooLarge()
        chunks.append(chunk)
    if deadline.fired:  # the body may have been cut short by the watchdog
        raise ResponseTooSlow()
    return b"".join(chunks)
