"""GatewayClient against real local HTTP servers that misbehave on purpose.

Each case proves one line of the money-critical mapping: only a connection
that was never opened is `GatewayNotSent`; anything after the request may
have left is `GatewayOutcomeUnknown`. The last test runs a real signed batch
and `notify_verify` against the sandbox gateway.
"""

from __future__ import annotations

import secrets
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from tests.support.gateway import PARAMS, PARTNER, SIGN, XML_F, XML_P, XML_T
from tests.support.net import free_port
from tests.support.sandbox import run_sandbox
from worker.adapters.gateway.client import GatewayClient
from worker.domain.errors import GatewayError, GatewayNotSent, GatewayOutcomeUnknown
from worker.mapi import (
    Merchant,
    RefundItem,
    SyncStatus,
    build_refund_request,
    decode_form,
    make_batch_no,
)

pytestmark = pytest.mark.integration


@dataclass
class Received:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes


Action = Callable[["_Handler"], None]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        self._serve()

    def do_GET(self) -> None:
        self._serve()

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        parts = urlsplit(self.path)
        self.server.gateway.received.append(
            Received(self.command, parts.path, parse_qs(parts.query), dict(self.headers), body)
        )
        self.server.gateway.action(self)

    def answer(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/xml; charset=GBK")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    gateway: ScriptedGateway

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that hang up mid-answer are part of the script


class ScriptedGateway:
    """A local HTTP server whose answer to every request is `action`."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.release = threading.Event()
        self.action: Action = answer(200, XML_T)
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.gateway = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/gateway.do"

    def close(self) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def answer(status: int, body: bytes, headers: dict[str, str] | None = None) -> Action:
    return lambda handler: handler.answer(status, body, headers)


def hang(handler: _Handler) -> None:
    """Take the request, then say nothing until the test ends."""
    handler.server.gateway.release.wait(10)
    handler.close_connection = True


def reset(handler: _Handler) -> None:
    """Take the request, then abort the connection with an RST (SO_LINGER 0)."""
    handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    handler.rfile.close()
    handler.wfile.close()
    handler.connection.close()
    handler.close_connection = True


def close_silently(handler: _Handler) -> None:
    """Take the request, then close the connection without an answer."""
    handler.close_connection = True


@pytest.fixture
def gateway() -> Iterator[ScriptedGateway]:
    server = ScriptedGateway()
    yield server
    server.close()


def client_for(
    url: str, *, partner: str = PARTNER, connect_timeout: float = 0.5, read_timeout: float = 0.5
) -> GatewayClient:
    return GatewayClient(
        url,
        charset="gbk",
        partner=partner,
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
    )


def histogram_count(operation: str, outcome: str) -> float:
    value = REGISTRY.get_sample_value(
        "alipay_gateway_request_seconds_count",
        {"merchant": PARTNER, "operation": operation, "outcome": outcome},
    )
    return value or 0.0


# ---------------------------------------------------------------------------
# Answers the gateway gives


def test_accepted_batch_is_posted_as_a_gbk_form_to_the_charset_url(
    gateway: ScriptedGateway,
) -> None:
    before = histogram_count("submit", "accepted")
    with client_for(gateway.url) as client, capture_logs() as logs:
        sync = client.submit(PARAMS)

    assert sync.status is SyncStatus.ACCEPTED
    [request] = gateway.received
    assert request.method == "POST"
    assert request.path == "/gateway.do"
    assert request.query == {"_input_charset": ["gbk"]}
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded; charset=gbk"
    assert "协商".encode() not in request.body
    assert decode_form(request.body, "gbk") == PARAMS
    assert histogram_count("submit", "accepted") == before + 1
    [line] = [entry for entry in logs if entry["event"] == "gateway.request"]
    assert line["batch_no"] == PARAMS["batch_no"]
    assert line["outcome"] == "accepted"
    assert isinstance(line["latency_ms"], int)
    assert SIGN not in repr(logs)
    assert "detail_data" not in repr(logs)
    assert "协商" not in repr(logs)


def test_processing_answer(gateway: ScriptedGateway) -> None:
    gateway.action = answer(200, XML_P)
    with client_for(gateway.url) as client:
        assert client.submit(PARAMS).status is SyncStatus.PROCESSING


def test_refused_answer_carries_the_code(gateway: ScriptedGateway) -> None:
    gateway.action = answer(200, XML_F)
    with client_for(gateway.url) as client:
        sync = client.submit(PARAMS)

    assert sync.status is SyncStatus.REFUSED
    assert sync.error == "DUPLICATE_BATCH_NO"


def test_connections_are_reused(gateway: ScriptedGateway) -> None:
    ports: set[int] = set()

    def remember_port(handler: _Handler) -> None:
        ports.add(handler.client_address[1])
        handler.answer(200, XML_T)

    gateway.action = remember_port
    with client_for(gateway.url) as client:
        for _ in range(3):
            client.submit(PARAMS)

    assert len(gateway.received) == 3
    assert len(ports) == 1


def test_cookies_from_the_gateway_are_never_sent_back(gateway: ScriptedGateway) -> None:
    gateway.action = answer(200, XML_T, {"Set-Cookie": "JSESSIONID=abc; Path=/"})
    with client_for(gateway.url) as client:
        client.submit(PARAMS)
        client.submit(PARAMS)

    assert all("Cookie" not in request.headers for request in gateway.received)


# ---------------------------------------------------------------------------
# The request may have arrived: outcome unknown


@pytest.mark.parametrize(
    ("status", "body"),
    [(500, b"Internal Server Error"), (502, b""), (503, XML_T), (404, b"not found")],
)
def test_non_200_is_outcome_unknown(gateway: ScriptedGateway, status: int, body: bytes) -> None:
    gateway.action = answer(status, body)
    before = histogram_count("submit", "unknown")
    with client_for(gateway.url) as client, pytest.raises(GatewayOutcomeUnknown) as caught:
        client.submit(PARAMS)

    assert str(caught.value) == f"http_{status}"
    assert histogram_count("submit", "unknown") == before + 1


def test_redirect_is_not_followed_and_is_outcome_unknown(gateway: ScriptedGateway) -> None:
    gateway.action = answer(302, b"", {"Location": "/elsewhere"})
    with client_for(gateway.url) as client, pytest.raises(GatewayOutcomeUnknown):
        client.submit(PARAMS)

    assert [request.path for request in gateway.received] == ["/gateway.do"]


@pytest.mark.parametrize(
    "body",
    [
        b"<html><body>502 Bad Gateway</body></html>",
        b"",
        b"<alipay><is_success>T</is_success>",  # truncated
        b"<alipay><is_success>X</is_success></alipay>",
    ],
)
def test_unparseable_answer_is_outcome_unknown(gateway: ScriptedGateway, body: bytes) -> None:
    gateway.action = answer(200, body)
    with client_for(gateway.url) as client, pytest.raises(GatewayOutcomeUnknown) as caught:
        client.submit(PARAMS)

    assert str(caught.value) == "unparseable_response"


def test_oversized_answer_is_outcome_unknown(gateway: ScriptedGateway) -> None:
    gateway.action = answer(200, b"<alipay>" + b" " * 200_000 + b"</alipay>")
    with client_for(gateway.url) as client, pytest.raises(GatewayOutcomeUnknown):
        client.submit(PARAMS)


def test_read_timeout_after_sending_is_outcome_unknown(gateway: ScriptedGateway) -> None:
    gateway.action = hang
    started = time.monotonic()
    with client_for(gateway.url) as client, pytest.raises(GatewayOutcomeUnknown) as caught:
        client.submit(PARAMS)

    assert str(caught.value) == "read_timeout"
    assert time.monotonic() - started < 3
    assert decode_form(gateway.received[0].body, "gbk") == PARAMS  # it did arrive


def test_connection_reset_after_sending_is_outcome_unknown(gateway: ScriptedGateway) -> None:
    gateway.action = reset
    with client_for(gateway.url) as client, pytest.raises(GatewayOutcomeUnknown) as caught:
        client.submit(PARAMS)

    assert str(caught.value) == "connection_lost"
    assert "ConnectionResetError" in repr(caught.value.__cause__)
    # It arrived, and the transport did not quietly send it a second time.
    assert len(gateway.received) == 1


def test_connection_closed_without_answer_is_outcome_unknown(gateway: ScriptedGateway) -> None:
    gateway.action = close_silently
    with client_for(gateway.url) as client, pytest.raises(GatewayOutcomeUnknown) as caught:
        client.submit(PARAMS)

    assert str(caught.value) == "connection_lost"
    assert len(gateway.received) == 1


# ---------------------------------------------------------------------------
# The request certainly never left: not sent


def test_nothing_listening_is_not_sent() -> None:
    before = histogram_count("submit", "not_sent")
    url = f"http://127.0.0.1:{free_port()}/gateway.do"
    with client_for(url) as client, pytest.raises(GatewayNotSent) as caught:
        client.submit(PARAMS)

    assert str(caught.value) == "connect_failed"
    assert histogram_count("submit", "not_sent") == before + 1


def test_dns_failure_is_not_sent() -> None:
    client = client_for("http://gateway.invalid/gateway.do")
    with client, pytest.raises(GatewayNotSent) as caught:
        client.submit(PARAMS)

    assert str(caught.value) == "connect_failed"


def test_connect_timeout_is_not_sent() -> None:
    # A listener with a full accept queue drops further SYNs: connect() times out.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers: list[socket.socket] = []
    try:
        for _ in range(3):
            filler = socket.socket()
            filler.settimeout(0.2)
            try:
                filler.connect(("127.0.0.1", port))
            except OSError:
                filler.close()
                break
            fillers.append(filler)
        client = client_for(f"http://127.0.0.1:{port}/gateway.do", connect_timeout=0.3)
        with client, pytest.raises(GatewayNotSent) as caught:
            client.submit(PARAMS)
        assert str(caught.value) == "connect_timeout"
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


# ---------------------------------------------------------------------------
# notify_verify


@pytest.mark.parametrize(
    ("body", "expected"),
    [(b"true", "true"), (b"false", "false"), (b"invalid", "invalid"), (b"<html/>", "unknown")],
)
def test_notify_verify_answers(gateway: ScriptedGateway, body: bytes, expected: str) -> None:
    gateway.action = answer(200, body)
    with client_for(gateway.url) as client:
        assert client.notify_verify("70fec0c2730b27528665af4517c27b95") == expected

    [request] = gateway.received
    assert request.method == "GET"
    assert request.path == "/gateway.do"
    assert request.query == {
        "service": ["notify_verify"],
        "partner": [PARTNER],
        "notify_id": ["70fec0c2730b27528665af4517c27b95"],
    }


@pytest.mark.parametrize("action", [answer(500, b"oops"), hang, reset])
def test_notify_verify_network_trouble_raises_gateway_error(
    gateway: ScriptedGateway, action: Action
) -> None:
    gateway.action = action
    before = histogram_count("notify_verify", "error")
    with client_for(gateway.url) as client, pytest.raises(GatewayError):
        client.notify_verify("70fec0c2730b27528665af4517c27b95")

    assert histogram_count("notify_verify", "error") == before + 1


def test_notify_verify_with_nothing_listening_raises_gateway_error() -> None:
    client = client_for(f"http://127.0.0.1:{free_port()}/gateway.do")
    with client, pytest.raises(GatewayError):
        client.notify_verify("70fec0c2730b27528665af4517c27b95")


# ---------------------------------------------------------------------------
# Against the sandbox gateway (`refund-worker sandbox`)


@pytest.fixture
def sandbox() -> Iterator[tuple[str, str]]:
    """A sandbox process; yields (gateway URL, MD5 key)."""
    with run_sandbox(process_delay=0.05, rsa_merchant=False, partner=PARTNER) as running:
        yield running.gateway_url, running.md5_key


def test_submit_and_notify_verify_against_the_sandbox(
    sandbox: tuple[str, str], gateway: ScriptedGateway
) -> None:
    gateway_url, md5_key = sandbox
    catcher = gateway  # stands in for the merchant's notify_url; answers "fail"
    catcher.action = answer(200, b"fail")
    merchant = Merchant(
        partner=PARTNER,
        charset="gbk",
        sign_type="MD5",
        md5_key=md5_key,
        notify_url=catcher.url.replace("/gateway.do", "/alipay/notify"),
    )
    now = datetime.now(UTC)
    params = build_refund_request(
        merchant,
        batch_no=make_batch_no(now, secrets.randbelow(10**9) + 1),
        items=[RefundItem("2024050121001004270231872174", Decimal("0.01"), "协商退款")],
        now=now,
    )
    with client_for(gateway_url, read_timeout=5) as client:
        assert client.submit(params).status is SyncStatus.ACCEPTED
        again = client.submit(params)
        assert (again.status, again.error) == (SyncStatus.REFUSED, "DUPLICATE_BATCH_NO")

        deadline = time.monotonic() + 10
        while not any(r.method == "POST" for r in catcher.received):
            assert time.monotonic() < deadline, "the sandbox sent no notification"
            time.sleep(0.02)
        [note] = [r for r in catcher.received if r.method == "POST"][:1]
        notify_id = decode_form(note.body, "gbk")["notify_id"]

        assert client.notify_verify(notify_id) == "true"
        assert client.notify_verify("f" * 32) == "false"
    stranger = client_for(gateway_url, partner="2088999999999999")
    with stranger:
        assert stranger.notify_verify(notify_id) == "invalid"
