"""Pure parts of the gateway client: which failures prove nothing was sent.

The integration tests drive the same mapping through real sockets; these pin
each requests/urllib3 exception shape to its outcome.
"""

from __future__ import annotations

from http.client import RemoteDisconnected

import pytest
import requests
from urllib3.exceptions import (
    MaxRetryError,
    NameResolutionError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    SSLError,
)

from worker.adapters.gateway.client import (
    GatewayClient,
    classify_request_exception,
    max_request_seconds,
)
from worker.config.settings import load_settings
from worker.domain.errors import GatewayNotSent, GatewayOutcomeUnknown
from worker.entrypoints.runtime import Runtime, submit_lease_for

URL = "http://gateway.test/gateway.do"


def _max_retry(reason: Exception) -> MaxRetryError:
    return MaxRetryError(None, URL, reason)  # type: ignore[arg-type]


NOT_SENT: list[tuple[str, requests.RequestException]] = [
    ("connect timeout", requests.exceptions.ConnectTimeout("timed out")),
    (
        "connection refused",
        requests.exceptions.ConnectionError(
            _max_retry(NewConnectionError(None, "Connection refused"))  # type: ignore[arg-type]
        ),
    ),
    (
        "DNS failure",
        requests.exceptions.ConnectionError(
            _max_retry(NameResolutionError("gateway.test", None, OSError("no such host")))  # type: ignore[arg-type]
        ),
    ),
    ("missing schema", requests.exceptions.MissingSchema("no scheme")),
    ("invalid URL", requests.exceptions.InvalidURL("bad url")),
]

MAYBE_SENT: list[tuple[str, requests.RequestException]] = [
    ("read timeout", requests.exceptions.ReadTimeout("read timed out")),
    (
        "remote disconnected",
        requests.exceptions.ConnectionError(
            ProtocolError("Connection aborted.", RemoteDisconnected("closed"))
        ),
    ),
    (
        "connection reset",
        requests.exceptions.ConnectionError(
            ProtocolError("Connection aborted.", ConnectionResetError(104, "reset"))
        ),
    ),
    (
        "read timeout while streaming",
        requests.exceptions.ConnectionError(ReadTimeoutError(None, URL, "timed out")),  # type: ignore[arg-type]
    ),
    (
        "max retries with a protocol error",
        requests.exceptions.ConnectionError(_max_retry(ProtocolError("aborted"))),
    ),
    ("TLS failure", requests.exceptions.SSLError(_max_retry(SSLError("handshake")))),
    ("proxy failure", requests.exceptions.ProxyError("proxy said no")),
    ("truncated chunked body", requests.exceptions.ChunkedEncodingError("incomplete")),
    ("bare connection error", requests.exceptions.ConnectionError()),
    ("other request error", requests.exceptions.TooManyRedirects("loop")),
]


@pytest.mark.parametrize(("case", "exc"), NOT_SENT, ids=[c for c, _ in NOT_SENT])
def test_failures_before_connecting_are_not_sent(case: str, exc: requests.RequestException) -> None:
    error = classify_request_exception(exc)

    assert type(error) is GatewayNotSent, case


@pytest.mark.parametrize(("case", "exc"), MAYBE_SENT, ids=[c for c, _ in MAYBE_SENT])
def test_failures_that_may_follow_sending_are_unknown(
    case: str, exc: requests.RequestException
) -> None:
    error = classify_request_exception(exc)

    assert type(error) is GatewayOutcomeUnknown, case


def test_reasons_are_short_codes_without_exception_text() -> None:
    exc = requests.exceptions.ReadTimeout("HTTPConnectionPool(host='x'): detail_data=secret")

    assert str(classify_request_exception(exc)) == "read_timeout"


# ---------------------------------------------------------------------------
# The submission lease outlasts the client's deadline


TIMEOUTS = [(5.0, 30.0), (0.5, 0.5), (300.0, 600.0), (1.0, 120.0), (0.1, 0.1)]


@pytest.mark.parametrize(("connect", "read"), TIMEOUTS)
def test_the_submission_lease_outlasts_the_longest_request(connect: float, read: float) -> None:
    client = GatewayClient(
        URL,
        charset="utf-8",
        partner="2088000000000001",
        connect_timeout=connect,
        read_timeout=read,
    )
    with client:
        longest = client.max_request_seconds
    # Headers may take connect + read, and the body another read.
    assert longest >= connect + 2 * read
    assert longest == max_request_seconds(connect, read)
    assert submit_lease_for(connect, read) >= longest + 5.0


@pytest.mark.parametrize(("connect", "read"), TIMEOUTS)
def test_the_runtime_lease_is_derived_from_the_configured_client(
    connect: float, read: float
) -> None:
    settings = load_settings(
        {
            "ALIPAY_MD5_KEY": "k" * 32,
            "GATEWAY_CONNECT_TIMEOUT": str(connect),
            "GATEWAY_READ_TIMEOUT": str(read),
        }
    )
    rt = Runtime(settings)
    assert rt.submit_lease_seconds > rt.gateway_for(rt.merchants.default).max_request_seconds
    assert rt.submit_lease_seconds == submit_lease_for(connect, read)
