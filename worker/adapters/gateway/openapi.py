"""HTTP adapter for the Alipay OpenAPI gateway: one signed form POST, one JSON answer.

It shares the mapi client's transport (`exchange`: one overall deadline, no redirects,
no retries, a bounded body; `classify_request_exception`: only a failure to open the
connection proves nothing was sent). It returns what the network did
(`SendOutcome`), the raw answer text and its classification (`worker.openapi`):
verifying and classifying happen here so the services see one value, but what to do
with it is `worker.domain.policy.openapi`'s decision.

A non-200 status, a body that is not UTF-8, a deadline passed or a reset after sending
are UNKNOWN outcomes (the gateway may have the request). Logs carry the method, the
outcome and the latency, never the parameters, the signature or the answer.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from urllib.parse import urlencode

import requests
import structlog
from urllib3.util.timeout import Timeout

from worker.adapters.gateway.client import (
    GATEWAY_REQUEST_SECONDS,
    DeadlineExceeded,
    ResponseTooLarge,
    classify_request_exception,
    exchange,
    max_request_seconds,
)
from worker.adapters.gateway.deadline import gateway_session
from worker.domain.errors import GatewayNotSent
from worker.domain.policy.openapi import SendOutcome
from worker.openapi import body_text, classify, read_answer
from worker.services.ports import OpenApiReply

__all__ = ["MAX_OPENAPI_RESPONSE_BYTES", "OpenApiClient"]

log = structlog.get_logger(__name__)

MAX_OPENAPI_RESPONSE_BYTES = 256 * 1024


class OpenApiClient:
    """A pooled HTTP client for one OpenAPI gateway URL (explicit timeouts, one deadline)."""

    def __init__(
        self, url: str, *, connect_timeout: float, read_timeout: float, pool_size: int = 10
    ) -> None:
        self._url = url
        self._max_seconds = max_request_seconds(connect_timeout, read_timeout)
        self._timeout = Timeout(connect=connect_timeout, read=read_timeout, total=self._max_seconds)
        self._session = gateway_session(pool_size)

    @property
    def max_request_seconds(self) -> float:
        return self._max_seconds

    def close(self) -> None:
        self._session.close()

    def call(
        self, params: Mapping[str, str], *, public_key_pem: str | bytes, partner: str
    ) -> OpenApiReply:
        """POST the signed `params`; the reply (never raises for what the network does)."""
        method = params.get("method", "")
        started = time.monotonic()
        reply = self._call(params, method, public_key_pem)
        GATEWAY_REQUEST_SECONDS.labels(
            merchant=partner, operation=method, outcome=reply.outcome.value
        ).observe(time.monotonic() - started)
        verdict = reply.classification.verdict.value if reply.classification else None
        emit = log.info if reply.outcome is SendOutcome.ANSWERED else log.warning
        emit(
            "openapi.request",
            method=method,
            merchant=partner,
            outcome=reply.outcome.value,
            verdict=verdict,
            reason=reply.reason or None,
            latency_ms=round((time.monotonic() - started) * 1000),
        )
        return reply

    def _call(
        self, params: Mapping[str, str], method: str, public_key_pem: str | bytes
    ) -> OpenApiReply:
        body = urlencode(dict(params), encoding="utf-8")
        headers = {
            "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
            "Accept": "application/json",
        }
        try:
            status, content = exchange(
                self._session,
                "POST",
                self._url,
                timeout=self._timeout,
                max_seconds=self._max_seconds,
                limit=MAX_OPENAPI_RESPONSE_BYTES,
                data=body.encode("ascii"),
                headers=headers,
            )
        except DeadlineExceeded:
            return OpenApiReply(SendOutcome.UNKNOWN, reason="deadline_exceeded")
        except ResponseTooLarge:
            return OpenApiReply(SendOutcome.UNKNOWN, reason="response_too_large")
        except requests.RequestException as exc:
            error = classify_request_exception(exc)
            outcome = (
                SendOutcome.NOT_SENT if isinstance(error, GatewayNotSent) else SendOutcome.UNKNOWN
            )
            return OpenApiReply(outcome, reason=str(error).split(":", 1)[0])
        if status != 200:
            return OpenApiReply(SendOutcome.UNKNOWN, reason=f"http_{status}")
        raw = body_text(content)
        if raw is None:
            return OpenApiReply(SendOutcome.UNKNOWN, reason="answer_not_utf8")
        classification = classify(read_answer(raw, method, public_key_pem))
        return OpenApiReply(SendOutcome.ANSWERED, raw=raw, classification=classification)
