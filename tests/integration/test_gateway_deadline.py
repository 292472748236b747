"""The gateway client's overall deadline, against a local socket server that stalls on purpose.

The read timeout bounds each socket read only: a server that sends its status line and
headers a line at a time, or its body a byte at a time, would hold a submission for as
long as it likes. The submission lease is derived from the client's deadline, so a
request that outlived it would be re-driven while still in flight.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from tests.support.gateway import PARAMS, XML_T
from worker.adapters.gateway.client import GatewayClient
from worker.adapters.gateway.query import RefundQueryClient
from worker.domain.errors import GatewayError, GatewayOutcomeUnknown
from worker.mapi import Merchant, SyncStatus

pytestmark = pytest.mark.integration

CONNECT, READ = 0.5, 0.5
# How far past its deadline a request may end (thread wake-up, closing, parsing).
OVERSHOOT = 0.5
# A stalling server gives up after this long, so a client without a deadline fails slowly.
STALL_LIMIT = 6.0

Script = Callable[[socket.socket, threading.Event], None]


def _read_request(conn: socket.socket) -> None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            return
        body += chunk


class StallingServer:
    """Accepts connections; answers every request on them with `script`."""

    def __init__(self) -> None:
        self.script: Script = answer_at_once
        self.stop = threading.Event()
        self.requests = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}/gateway.do"

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            while not self.stop.is_set():
                _read_request(conn)
                self.requests += 1
                try:
                    self.script(conn, self.stop)
                except OSError:
                    return

    def close(self) -> None:
        self.stop.set()
        self._thread.join(timeout=5)
        self._listener.close()


def answer_at_once(conn: socket.socket, stop: threading.Event) -> None:
    conn.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: "
        + str(len(XML_T)).encode()
        + b"\r\n\r\n"
        + XML_T
    )


def answer_after(seconds: float) -> Script:
    def script(conn: socket.socket, stop: threading.Event) -> None:
        stop.wait(seconds)
        answer_at_once(conn, stop)

    return script


def headers_a_line_at_a_time(conn: socket.socket, stop: threading.Event) -> None:
    """The status line, then one more header every 0.2 s: each read is quick, none ends."""
    conn.sendall(b"HTTP/1.1 200 OK\r\n")
    started = time.monotonic()
    n = 0
    while not stop.wait(0.2) and time.monotonic() - started < STALL_LIMIT:
        n += 1
        conn.sendall(f"X-Padding-{n}: x\r\n".encode())
    raise OSError("stalled long enough")


def body_a_byte_at_a_time(conn: socket.socket, stop: threading.Event) -> None:
    """Headers at once, then the body one byte every 0.2 s."""
    body = XML_T + b" " * 1000
    conn.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
    )
    started = time.monotonic()
    for i in range(len(body)):
        if stop.wait(0.2) or time.monotonic() - started > STALL_LIMIT:
            break
        conn.sendall(body[i : i + 1])
    raise OSError("stalled long enough")


@pytest.fixture
def server() -> Iterator[StallingServer]:
    running = StallingServer()
    yield running
    running.close()


def client_for(server: StallingServer) -> GatewayClient:
    return GatewayClient(
        server.url,
        charset="gbk",
        partner=PARAMS["partner"],
        connect_timeout=CONNECT,
        read_timeout=READ,
    )


@pytest.mark.parametrize("script", [headers_a_line_at_a_time, body_a_byte_at_a_time])
def test_a_trickling_answer_is_cut_at_the_deadline(server: StallingServer, script: Script) -> None:
    server.script = script
    with client_for(server) as client:
        started = time.monotonic()
        with pytest.raises(GatewayOutcomeUnknown) as caught:
            client.submit(PARAMS)
        elapsed = time.monotonic() - started
        assert str(caught.value) == "deadline_exceeded"
        assert elapsed <= client.max_request_seconds + OVERSHOOT
        assert client.max_request_seconds == pytest.approx(CONNECT + 2 * READ)


def test_notify_verify_has_the_same_deadline(server: StallingServer) -> None:
    server.script = headers_a_line_at_a_time
    with client_for(server) as client:
        started = time.monotonic()
        with pytest.raises(GatewayError):
            client.notify_verify("70fec0c2730b27528665af4517c27b95")
        assert time.monotonic() - started <= client.max_request_seconds + OVERSHOOT


def test_an_answer_within_the_deadline_is_read(server: StallingServer) -> None:
    server.script = answer_after(READ * 0.6)
    with client_for(server) as client:
        assert client.submit(PARAMS).status is SyncStatus.ACCEPTED


def test_a_finished_request_s_deadline_never_touches_the_next_one(
    server: StallingServer,
) -> None:
    # The first request ends early; its deadline passes while the second one, on the
    # same pooled connection, is waiting for its answer.
    with client_for(server) as client:
        assert client.submit(PARAMS).status is SyncStatus.ACCEPTED
        server.script = answer_after(READ * 0.8)
        time.sleep(client.max_request_seconds - READ * 0.5)
        assert client.submit(PARAMS).status is SyncStatus.ACCEPTED
        assert server.requests == 2


def test_the_client_is_usable_after_a_request_was_cut(server: StallingServer) -> None:
    with client_for(server) as client:
        server.script = body_a_byte_at_a_time
        with pytest.raises(GatewayOutcomeUnknown):
            client.submit(PARAMS)
        server.script = answer_at_once
        assert client.submit(PARAMS).status is SyncStatus.ACCEPTED


@pytest.mark.parametrize("script", [headers_a_line_at_a_time, body_a_byte_at_a_time])
def test_the_refund_query_has_the_same_deadline_and_is_then_no_answer(
    server: StallingServer, script: Script
) -> None:
    server.script = script
    merchant = Merchant(partner=PARAMS["partner"], md5_key="0" * 32)
    client = RefundQueryClient(server.url, merchant, connect_timeout=CONNECT, read_timeout=READ)
    try:
        started = time.monotonic()
        result = client.query_refunds(batch_no="20240501ab12")
        elapsed = time.monotonic() - started
    finally:
        client.close()
    assert result.answer == "no_answer"
    assert "deadline_exceeded" in result.detail
    assert elapsed <= CONNECT + 2 * READ + OVERSHOOT
