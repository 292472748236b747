"""HTTP adapter for `refund_fastpay_query` (requests), the reconciler's port to the gateway.

The query is a signed mapi request POSTed to `<gateway>?_input_charset=<charset>`
like the refund itself; its answer is form-encoded text (`is_success=T&result_details=...`
or `is_success=F&error_code=...`), or XML for some refusals. It never changes anything
at the gateway, so unlike a submission it may be repeated freely; every failure
(network, status, size, time, an unreadable answer) is simply "no answer", never a fact.

The answer is read by `worker.mapi.query.parse_refund_query`, whose entries come from
the tolerant reader of `worker.mapi.results`, so an answer in any legal shape of the
grammar still counts. Logs carry `batch_no`/`trade_no`, latency and the
answer's kind, never the signature or the body.
"""

from __future__ import annotations

import time

import requests
import structlog
from urllib3.util.timeout import Timeout

from worker.adapters.gateway.client import (
    GATEWAY_REQUEST_SECONDS,
    DeadlineExceeded,
    ResponseTooLarge,
    exchange,
    max_request_seconds,
)
from worker.adapters.gateway.deadline import gateway_session
from worker.domain.errors import ConfigError, ProtocolError, SigningError
from worker.mapi import Merchant, encode_form, gateway_url_with_charset
from worker.mapi.query import QueryStatus, build_refund_query, parse_refund_query
from worker.services.ports import QueriedItem, QueryResult

log = structlog.get_logger(__name__)

MAX_QUERY_RESPONSE_BYTES = 1024 * 1024


class RefundQueryClient:
    """Sends `refund_fastpay_query` for one merchant; implements the reconciler's port."""

    def __init__(
        self,
        url: str,
        merchant: Merchant,
        *,
        connect_timeout: float,
        read_timeout: float,
        pool_size: int = 4,
    ) -> None:
        self._url = url
        self._merchant = merchant
        self._deadline_seconds = max_request_seconds(connect_timeout, read_timeout)
        self._timeout = Timeout(
            connect=connect_timeout, read=read_timeout, total=self._deadline_seconds
        )
        self._session = gateway_session(pool_size)

    def close(self) -> None:
        self._session.close()

    def query_refunds(
        self, *, batch_no: str | None = None, trade_no: str | None = None
    ) -> QueryResult:
        started = time.monotonic()
        bound = log.bind(batch_no=batch_no, trade_no=trade_no)
        try:
            params = build_refund_query(self._merchant, batch_no=batch_no, trade_no=trade_no)
        except (ConfigError, ProtocolError, SigningError) as exc:
            bound.error("gateway.query_unsendable", error=str(exc)[:200])
            return QueryResult("no_answer", detail=f"query cannot be built: {exc}"[:300])
        charset = self._merchant.charset
        body = self._post(params, charset, started, bound)
        if isinstance(body, QueryResult):
            return body
        result = interpret_answer(body, charset)
        GATEWAY_REQUEST_SECONDS.labels(
            merchant=self._merchant.partner, operation="query", outcome=result.answer
        ).observe(time.monotonic() - started)
        bound.info(
            "gateway.request",
            operation="query",
            outcome=result.answer,
            error_code=result.error_code,
            items=len(result.items),
            latency_ms=round((time.monotonic() - started) * 1000),
        )
        return result

    def _post(
        self,
        params: dict[str, str],
        charset: str,
        started: float,
        bound: structlog.typing.FilteringBoundLogger,
    ) -> bytes | QueryResult:
        try:
            status, content = exchange(
                self._session,
                "POST",
                gateway_url_with_charset(self._url, charset),
                timeout=self._timeout,
                max_seconds=self._deadline_seconds,
                limit=MAX_QUERY_RESPONSE_BYTES,
                data=encode_form(params, charset),
                headers={
                    "Content-Type": f"application/x-www-form-urlencoded; charset={charset}",
                    "Accept": "text/plain, text/xml, */*",
                },
            )
        except DeadlineExceeded:
            return self._failed("request_failed:deadline_exceeded", started, bound)
        except ResponseTooLarge:
            return self._failed("response_too_large", started, bound)
        except requests.RequestException as exc:
            return self._failed(f"request_failed:{type(exc).__name__}", started, bound)
        except ProtocolError as exc:
            return self._failed(f"unencodable:{exc}"[:100], started, bound)
        if status != 200:
            return self._failed(f"http_{status}", started, bound)
        return content

    def _failed(
        self, reason: str, started: float, bound: structlog.typing.FilteringBoundLogger
    ) -> QueryResult:
        GATEWAY_REQUEST_SECONDS.labels(
            merchant=self._merchant.partner, operation="query", outcome="no_answer"
        ).observe(time.monotonic() - started)
        bound.warning(
            "gateway.request",
            operation="query",
            outcome="no_answer",
            reason=reason,
            latency_ms=round((time.monotonic() - started) * 1000),
        )
        return QueryResult("no_answer", detail=reason)


def interpret_answer(body: bytes, charset: str) -> QueryResult:
    """What a query answer proves (pure).

    Every entry that could be read is a fact and is returned. The answer counts as
    `complete` only when the whole answer was read (`FOUND`): an unreadable entry may
    be exactly the trade being looked for, so a partial answer never shows a trade
    to be absent.
    """
    answer = parse_refund_query(body, charset=charset)
    if answer.status is QueryStatus.NOT_FOUND:
        return QueryResult("not_found", answer.error or "REFUND_NOT_EXIST", detail=answer.detail)
    if answer.status is QueryStatus.REFUSED:
        return QueryResult("refused", answer.error, detail=answer.detail)
    items = tuple(
        QueriedItem(i.batch_no, i.trade_no, i.code, i.amount, i.raw) for i in answer.items
    )
    if not items:
        return QueryResult("no_answer", detail=answer.detail)
    complete = answer.status is QueryStatus.FOUND
    return QueryResult("found", items=items, detail=answer.detail, complete=complete)
