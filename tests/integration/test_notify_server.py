"""`refund-worker notify-server` as a process: gunicorn, real RabbitMQ, MD5-signed forms.

A small local HTTP server stands in for the gateway's `notify_verify`; it
answers by the notify_id's prefix (`genuine-` true, `forged-` false, `slow-`
true after a pause, `broken-` HTTP 500). The last test runs the real loop:
a batch submitted to the sandbox gateway, whose signed notification the
server verifies (signature, then `notify_verify` against the sandbox),
queues and acknowledges.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from tests.support.net import free_port
from tests.support.notify_server import (
    PARTNER,
    Server,
    delete_queues,
    queued_messages,
    start_server,
)
from tests.support.sandbox import run_sandbox
from worker.adapters.gateway.client import GatewayClient
from worker.mapi import (
    Merchant,
    RefundItem,
    SyncStatus,
    build_refund_request,
    encode_form,
    make_batch_no,
    sign,
)

pytestmark = pytest.mark.integration


class _VerifyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _VerifyServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        query = parse_qs(urlsplit(self.path).query)
        notify_id = query.get("notify_id", [""])[0]
        self.server.asked.append(notify_id)
        status, body = 200, b"true"
        if notify_id.startswith("forged-"):
            body = b"false"
        elif notify_id.startswith("broken-"):
            status, body = 500, b"oops"
        elif notify_id.startswith("slow-"):
            time.sleep(1.5)
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _VerifyServer(ThreadingHTTPServer):
    daemon_threads = True
    asked: list[str]


@pytest.fixture(scope="module")
def verify_gateway() -> Iterator[_VerifyServer]:
    server = _VerifyServer(("127.0.0.1", 0), _VerifyHandler)
    server.asked = []
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, verify_gateway: _VerifyServer
) -> Iterator[Server]:
    host, port = verify_gateway.server_address[:2]
    running = start_server(tmp_path_factory.mktemp("notify"), f"http://{host!s}:{port}/gateway.do")
    yield running
    try:
        assert running.stop() == 0, running.logs()
    finally:
        delete_queues(running.exchange)


@pytest.fixture(autouse=True)
def _empty_queue(request: pytest.FixtureRequest) -> None:
    if "server" in request.fixturenames:
        queued_messages(request.getfixturevalue("server").exchange)


def signed_form(server: Server, notify_id: str, **extra: str) -> dict[str, str]:
    form = {
        "notify_time": "2024-05-01 10:00:00",
        "notify_type": "batch_refund_notify",
        "notify_id": notify_id,
        "sign_type": "MD5",
        "batch_no": "20240501ab12",
        "success_num": "1",
        "result_details": "2014040311001004370000361525^5.00^SUCCESS",
        **extra,
    }
    form["sign"] = sign(form, sign_type="MD5", charset=server.charset, md5_key=server.md5_key)
    return form


def post(server: Server, form: dict[str, str], path: str = "/alipay/notify") -> requests.Response:
    return requests.post(
        f"{server.url}{path}",
        data=encode_form(form, server.charset),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=10,
    )


# ---------------------------------------------------------------------------


def test_probes(server: Server) -> None:
    health = requests.get(f"{server.url}/healthz", timeout=5)
    ready = requests.get(f"{server.url}/readyz", timeout=5)

    assert (health.status_code, health.content) == (200, b"ok")
    assert ready.status_code == 200


def test_signed_gbk_notification_is_queued_then_answered_success(
    server: Server, verify_gateway: _VerifyServer
) -> None:
    form = signed_form(server, f"genuine-{uuid.uuid4().hex}", memo="协商 退款+1")

    reply = post(server, form)

    assert reply.status_code == 200
    assert reply.content == b"success"
    assert form["notify_id"] in verify_gateway.asked
    [message] = queued_messages(server.exchange)
    assert message["actor_name"] == "process_notify"
    kind, queued_form, _received_at, partner = message["args"]
    assert partner == PARTNER
    assert kind == "batch_refund"
    assert queued_form == form


def test_dback_notification_is_queued_as_dback(server: Server) -> None:
    form = {
        "notify_id": f"genuine-{uuid.uuid4().hex}",
        "sign_type": "MD5",
        "trade_no": "2014040311001004370000361525",
        "refund_batch_no": "20240501ab12",
        "bank_name": "工商银行",
        "status": "S",
    }
    form["sign"] = sign(form, sign_type="MD5", charset=server.charset, md5_key=server.md5_key)

    reply = post(server, form, "/alipay/dback-notify")

    assert (reply.status_code, reply.content) == (200, b"success")
    [message] = queued_messages(server.exchange)
    assert message["args"][:2] == ["dback", form]


def test_forged_signature_is_refused_and_nothing_is_queued(server: Server) -> None:
    form = signed_form(server, f"genuine-{uuid.uuid4().hex}")
    form["result_details"] = form["result_details"].replace("5.00", "500.00")

    reply = post(server, form)

    assert (reply.status_code, reply.content) == (403, b"fail")
    assert queued_messages(server.exchange) == []


def test_notify_verify_false_is_refused(server: Server) -> None:
    reply = post(server, signed_form(server, f"forged-{uuid.uuid4().hex}"))

    assert (reply.status_code, reply.content) == (403, b"fail")
    assert queued_messages(server.exchange) == []


def test_notify_verify_failing_is_503_so_alipay_resends(server: Server) -> None:
    reply = post(server, signed_form(server, f"broken-{uuid.uuid4().hex}"))

    assert (reply.status_code, reply.content) == (503, b"fail")
    assert queued_messages(server.exchange) == []


def test_oversize_body_is_413(server: Server) -> None:
    form = signed_form(server, f"genuine-{uuid.uuid4().hex}", memo="x" * 9000)

    reply = post(server, form)

    assert (reply.status_code, reply.content) == (413, b"fail")
    assert queued_messages(server.exchange) == []


def test_short_body_is_answered_not_waited_for(server: Server) -> None:
    host, port = urlsplit(server.url).hostname, urlsplit(server.url).port
    assert host is not None and port is not None
    started = time.monotonic()
    with socket.create_connection((host, port), timeout=10) as client:
        client.sendall(
            b"POST /alipay/notify HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: 500\r\n\r\nnotify_id=abc"
        )
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.endswith(b"fail"):
            chunk = client.recv(4096)
            if not chunk:
                break
            answer += chunk

    assert answer.startswith(b"HTTP/1.1 400")
    assert answer.endswith(b"\r\n\r\nfail")
    assert time.monotonic() - started < 5


def test_metrics_are_exposed(server: Server) -> None:
    post(server, signed_form(server, f"genuine-{uuid.uuid4().hex}"))

    reply = requests.get(f"{server.url}/metrics", timeout=5)

    assert reply.status_code == 200
    assert 'alipay_notify_requests_total{kind="batch_refund",outcome="enqueued"}' in reply.text
    assert "alipay_gateway_request_seconds_bucket" in reply.text
    queued_messages(server.exchange)


def test_logs_are_json_and_never_carry_the_key_or_a_sign(server: Server) -> None:
    form = signed_form(server, f"genuine-{uuid.uuid4().hex}")
    forged = signed_form(server, f"forged-{uuid.uuid4().hex}")
    assert post(server, form).status_code == 200
    assert post(server, forged).status_code == 403
    queued_messages(server.exchange)
    time.sleep(0.2)

    lines = [json.loads(line) for line in server.logs().splitlines() if line.startswith("{")]
    events = {line["event"] for line in lines}
    assert {"notify.received", "notify.enqueued", "notify.rejected"} <= events
    assert server.md5_key not in server.logs()
    assert form["sign"] not in server.logs()
    assert forged["sign"] not in server.logs()


# ---------------------------------------------------------------------------
# Separate processes


def test_sigterm_lets_the_request_in_flight_finish(
    tmp_path: Path, verify_gateway: _VerifyServer
) -> None:
    host, port = verify_gateway.server_address[:2]
    running = start_server(tmp_path, f"http://{host!s}:{port}/gateway.do")
    try:
        form = signed_form(running, f"slow-{uuid.uuid4().hex}")
        result: dict[str, requests.Response] = {}
        request = threading.Thread(target=lambda: result.update(reply=post(running, form)))
        request.start()
        deadline = time.monotonic() + 5
        while form["notify_id"] not in verify_gateway.asked and time.monotonic() < deadline:
            time.sleep(0.02)
        assert form["notify_id"] in verify_gateway.asked

        code = running.stop(signal.SIGTERM, timeout=15)
        request.join(timeout=10)

        assert code == 0
        assert (result["reply"].status_code, result["reply"].content) == (200, b"success")
        assert [m["args"][1] for m in queued_messages(running.exchange)] == [form]
    finally:
        running.stop(signal.SIGKILL)
        delete_queues(running.exchange)


def test_broker_down_is_503_and_not_ready(tmp_path: Path, verify_gateway: _VerifyServer) -> None:
    host, port = verify_gateway.server_address[:2]
    dead_broker = f"amqp://guest:guest@127.0.0.1:{free_port()}/%2F"
    running = start_server(
        tmp_path, f"http://{host!s}:{port}/gateway.do", env={"AMQP_URL": dead_broker}
    )
    try:
        reply = post(running, signed_form(running, f"genuine-{uuid.uuid4().hex}"))
        ready = requests.get(f"{running.url}/readyz", timeout=10)

        assert (reply.status_code, reply.content) == (503, b"fail")
        assert ready.status_code == 503
        assert '"reason": "enqueue_failed"' in running.logs()
    finally:
        running.stop(signal.SIGTERM)


def test_bad_setting_exits_78_with_one_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "worker.entrypoints.cli", "notify-server"],
        env={**os.environ, "ALIPAY_SIGN_TYPE": "DSA", "ALIPAY_MD5_KEY": "x" * 32},
        capture_output=True,
        timeout=30,
    )

    assert result.returncode == 78
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1
    assert "ALIPAY_SIGN_TYPE" in lines[0]


# ---------------------------------------------------------------------------
# The whole loop against the sandbox gateway


def test_sandbox_notification_is_verified_queued_and_acknowledged(tmp_path: Path) -> None:
    with run_sandbox(process_delay=0.05, rsa_merchant=False, partner=PARTNER) as sandbox:
        loop_against_the_sandbox(tmp_path, sandbox.base_url, sandbox.md5_key)


def loop_against_the_sandbox(tmp_path: Path, sandbox_url: str, md5_key: str) -> None:
    running: Server | None = None
    try:
        running = start_server(tmp_path, f"{sandbox_url}/gateway.do", md5_key=md5_key)
        merchant = Merchant(
            partner=PARTNER,
            charset="gbk",
            sign_type="MD5",
            md5_key=md5_key,
            notify_url=f"{running.url}/alipay/notify",
        )
        now = datetime.now(UTC)
        batch_no = make_batch_no(now, secrets.randbelow(10**9) + 1)
        params = build_refund_request(
            merchant,
            batch_no=batch_no,
            items=[RefundItem("2024050121001004270231872174", Decimal("0.01"), "协商退款")],
            now=now,
        )
        client = GatewayClient(
            f"{sandbox_url}/gateway.do",
            charset="gbk",
            partner=PARTNER,
            connect_timeout=1,
            read_timeout=5,
        )
        with client:
            assert client.submit(params).status is SyncStatus.ACCEPTED
            deadline = time.monotonic() + 15
            messages: list[dict[str, Any]] = []
            while not messages and time.monotonic() < deadline:
                messages = queued_messages(running.exchange)
                time.sleep(0.05)
            [message] = messages
            kind, form, _received_at, partner = message["args"]
            assert partner == PARTNER
            assert kind == "batch_refund"
            assert form["batch_no"] == batch_no
            assert form["result_details"].startswith("2024050121001004270231872174^0.01^")

            # Answered `success`: the sandbox stops resending and stops vouching for it.
            deadline = time.monotonic() + 10
            summary = requests.get(f"{sandbox_url}/_sandbox/summary", timeout=5).json()
            while summary["notifications"]["pending"] and time.monotonic() < deadline:
                time.sleep(0.05)
                summary = requests.get(f"{sandbox_url}/_sandbox/summary", timeout=5).json()
            assert summary["notifications"]["pending"] == 0
            assert client.notify_verify(form["notify_id"]) == "false"
        assert '"event": "notify.enqueued"' in running.logs()
    finally:
        if running is not None:
            running.stop()
            delete_queues(running.exchange)
