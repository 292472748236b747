"""The notification sender's HTTP client against real local servers.

These tests pin what the ledger and the resend schedule rely on: only `200`
+ `success` (give or take whitespace) acknowledges, failures carry the names
`requests` gives them, connections are kept alive and reused, and a
connection the receiver closed (by header, by HTTP/1.0, or silently while
idle) never costs a delivery.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from sandbox.notifier import Delivery, Poster
from tests.support.net import free_port

pytestmark = pytest.mark.integration

FORM = "application/x-www-form-urlencoded; charset=utf-8"


@contextmanager
def http_server(
    answer: Callable[[BaseHTTPRequestHandler], tuple[int, bytes, dict[str, str]]],
    *,
    protocol: str = "HTTP/1.1",
) -> Iterator[tuple[str, list[tuple[str, Any]]]]:
    """A threaded server; yields its URL and a log of (event, detail) it appends to."""
    events: list[tuple[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = protocol

        def setup(self) -> None:
            super().setup()
            events.append(("connection", self.client_address[1]))

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            events.append(("post", (self.path, self.headers["Content-Type"], body)))
            status, payload, headers = answer(self)
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/alipay/notify", events
    finally:
        server.shutdown()
        server.server_close()


def delivery(url: str, body: bytes = b"notify_id=1&batch_no=2") -> Delivery:
    return Delivery(url=url, body=body, content_type=FORM)


def connections(events: list[tuple[str, Any]]) -> int:
    return sum(1 for kind, _ in events if kind == "connection")


def test_success_acknowledges_and_the_connection_is_reused() -> None:
    with http_server(lambda _h: (200, b"success", {})) as (url, events):
        poster = Poster(1.0, 2.0)
        outcomes = [poster.post(delivery(url, b"n=%d" % i)) for i in range(3)]
        poster.close()
    assert [(o.status, o.acknowledged, o.error) for o in outcomes] == [(200, True, None)] * 3
    assert connections(events) == 1
    posts = [detail for kind, detail in events if kind == "post"]
    assert posts[0] == ("/alipay/notify", FORM, b"n=0")


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (200, b"success\nfail"),
        (200, b"SUCCESS"),
        (200, b"fail"),
        (500, b"success"),
        (302, b"success"),
    ],
)
def test_anything_but_200_success_is_not_an_acknowledgement(status: int, body: bytes) -> None:
    with http_server(lambda _h: (status, body, {"Location": "/elsewhere"})) as (url, events):
        outcome = Poster(1.0, 2.0).post(delivery(url))
    assert (outcome.status, outcome.acknowledged, outcome.error) == (status, False, None)
    assert len([kind for kind, _ in events if kind == "post"]) == 1  # no redirect followed


@pytest.mark.parametrize("body", [b"success\r\n", b"success\n", b"  success\t"])
def test_success_with_surrounding_whitespace_is_an_acknowledgement(body: bytes) -> None:
    with http_server(lambda _h: (200, body, {})) as (url, _events):
        outcome = Poster(1.0, 2.0).post(delivery(url))
    assert (outcome.status, outcome.acknowledged, outcome.error) == (200, True, None)


def test_an_oversized_answer_is_not_read_and_the_connection_not_reused() -> None:
    with http_server(lambda _h: (200, b"success" + b" " * 5000, {})) as (url, events):
        poster = Poster(1.0, 2.0)
        first, second = poster.post(delivery(url)), poster.post(delivery(url))
    assert (first.acknowledged, second.acknowledged) == (False, False)
    assert connections(events) == 2


def test_nothing_listening_is_a_connection_error() -> None:
    outcome = Poster(1.0, 2.0).post(delivery(f"http://127.0.0.1:{free_port()}/n"))
    assert (outcome.status, outcome.acknowledged, outcome.error) == (None, False, "ConnectionError")


def test_a_receiver_that_never_answers_is_a_read_timeout() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    try:
        started = time.monotonic()
        outcome = Poster(1.0, 0.3).post(delivery(f"http://127.0.0.1:{listener.getsockname()[1]}/"))
        took = time.monotonic() - started
    finally:
        listener.close()
    assert (outcome.status, outcome.error) == (None, "ReadTimeout")
    assert 0.25 <= took < 2.0


def test_an_answer_whose_body_stalls_is_a_read_timeout() -> None:
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _addr = listener.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nsuc")
            time.sleep(1.0)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/n"
        outcome = Poster(1.0, 0.3).post(delivery(url))
        thread.join(5)
    finally:
        listener.close()
    assert (outcome.status, outcome.acknowledged, outcome.error) == (None, False, "ReadTimeout")


def test_connection_close_and_http_1_0_open_a_fresh_connection_each_time() -> None:
    with http_server(lambda _h: (200, b"success", {"Connection": "close"})) as (url, events):
        poster = Poster(1.0, 2.0)
        assert all(poster.post(delivery(url)).acknowledged for _ in range(3))
    assert connections(events) == 3
    with http_server(lambda _h: (200, b"success", {}), protocol="HTTP/1.0") as (url, events):
        poster = Poster(1.0, 2.0)
        assert all(poster.post(delivery(url)).acknowledged for _ in range(3))
    assert connections(events) == 3


def test_an_idle_connection_the_receiver_dropped_is_replaced_before_use() -> None:
    """A keep-alive answer, then the receiver closes the idle socket without a word."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[int] = []

    def serve() -> None:
        for _ in range(2):
            conn, _addr = listener.accept()
            accepted.append(1)
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                head, _, rest = data.partition(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                while len(rest) < length:
                    rest += conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nsuccess")
                time.sleep(0.05)  # then close: the client still holds it as idle

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/n"
        poster = Poster(1.0, 2.0)
        first = poster.post(delivery(url))
        time.sleep(0.3)  # the server has closed its end by now
        second = poster.post(delivery(url))
        thread.join(5)
    finally:
        listener.close()
    assert (first.acknowledged, second.acknowledged) == (True, True)
    assert len(accepted) == 2


def test_bad_urls_are_named_not_raised() -> None:
    poster = Poster(1.0, 2.0)
    assert poster.post(delivery("ftp://127.0.0.1/n")).error == "InvalidURL"
    assert poster.post(delivery("http://[::1/n")).error == "InvalidURL"
