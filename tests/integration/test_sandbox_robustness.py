"""Bad input of every kind gets an answer (gateway error or 4xx) and the sandbox keeps serving."""

from __future__ import annotations

import json
import os
import random
import socket
from collections.abc import Iterator

import pytest
import requests

from tests.support.sandbox import RunningSandbox, refund_params, run_sandbox, submit
from worker.mapi import SyncStatus, parse_sync_response

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSandbox]:
    faults = tmp_path_factory.mktemp("faults") / "faults.json"
    faults.write_text(json.dumps({"slow": {"rate": 0.0, "seconds": 1}}))
    with run_sandbox(extra_args=["--faults", f"@{faults}"]) as running:
        yield running


def raw_exchange(sb: RunningSandbox, data: bytes, *, read: bool = True) -> bytes:
    with socket.create_connection(("127.0.0.1", sb.port), timeout=10) as sock:
        sock.sendall(data)
        if not read:
            return b""
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def still_serving(sb: RunningSandbox) -> None:
    params = refund_params(md5_key=sb.md5_key)
    assert parse_sync_response(submit(sb, params).content).status is SyncStatus.ACCEPTED


def test_faults_given_at_start_from_a_file(sandbox: RunningSandbox) -> None:
    assert sandbox.client.faults()["faults"]["slow"] == {"rate": 0.0, "seconds": 1.0, "fired": 0}


def test_random_bytes_get_a_gateway_answer(sandbox: RunningSandbox) -> None:
    rng = random.Random(2024)
    for size in (0, 1, 17, 500, 5000, 200_000):
        body = rng.randbytes(size)
        for content_type in ("application/x-www-form-urlencoded", "application/octet-stream"):
            response = requests.post(
                sandbox.gateway_url,
                data=body,
                headers={"Content-Type": content_type},
                timeout=10,
            )
            assert response.status_code == 200
            parsed = parse_sync_response(response.content)
            assert parsed.status is SyncStatus.REFUSED
            assert parsed.error == "ILLEGAL_SERVICE"
    still_serving(sandbox)


@pytest.mark.parametrize(
    ("query", "body", "code"),
    [
        (b"service=refund_fastpay_by_platform_nopwd", b"", "ILLEGAL_PARTNER"),
        (
            b"",
            b"service=refund_fastpay_by_platform_nopwd&partner=2088000000000001",
            "ILLEGAL_CHARSET",
        ),
        (
            b"_input_charset=utf-8",
            b"service=refund_fastpay_by_platform_nopwd&partner=2088000000000001&x=%FF%FE",
            "ILLEGAL_CHARSET",
        ),
        (
            b"_input_charset=utf-8",
            b"service=refund_fastpay_by_platform_nopwd&partner=2088000000000001&=x",
            "ILLEGAL_ARGUMENT",
        ),
        (b"_input_charset=utf-8", b"service=a%ZZ&&&==", "ILLEGAL_SERVICE"),
        (b"service=%00%01&partner=%", b"%%%%", "ILLEGAL_SERVICE"),
    ],
)
def test_malformed_forms_get_gateway_codes(
    sandbox: RunningSandbox, query: bytes, body: bytes, code: str
) -> None:
    response = requests.post(
        f"{sandbox.gateway_url}?{query.decode('latin-1')}",
        data=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=10,
    )
    assert (response.status_code, parse_sync_response(response.content).error) == (200, code)


def test_oversized_bodies_are_refused_with_413(sandbox: RunningSandbox) -> None:
    big = b"detail_data=" + b"a" * (3 * 1024 * 1024)
    response = requests.post(sandbox.gateway_url, data=big, timeout=30)
    assert response.status_code == 413
    # A huge announced length is refused without reading it.
    head = (
        b"POST /gateway.do HTTP/1.1\r\nHost: x\r\nContent-Length: 104857600\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n\r\nservice=x"
    )
    assert raw_exchange(sandbox, head).startswith(b"HTTP/1.1 413")
    # A chunked body without a length is cut at the limit too.
    chunks = (b"a" * 65536 for _ in range(48))
    assert requests.post(sandbox.gateway_url, data=chunks, timeout=30).status_code == 413
    still_serving(sandbox)


def test_chunked_request_within_the_limit_is_read(sandbox: RunningSandbox) -> None:
    params = refund_params(md5_key=sandbox.md5_key)
    from worker.mapi import encode_form

    body = encode_form(params, "utf-8")
    response = requests.post(
        f"{sandbox.gateway_url}?_input_charset=utf-8",
        data=(body[i : i + 100] for i in range(0, len(body), 100)),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=10,
    )
    assert parse_sync_response(response.content).status is SyncStatus.ACCEPTED


def test_unknown_paths_and_methods(sandbox: RunningSandbox) -> None:
    base = sandbox.base_url
    assert requests.get(f"{base}/", timeout=5).status_code == 404
    assert requests.get(f"{base}/gateway", timeout=5).status_code == 404
    assert requests.get(f"{base}/_sandbox/nothing", timeout=5).status_code == 404
    assert requests.put(f"{base}/gateway.do", timeout=5).status_code == 405
    assert requests.delete(f"{base}/_sandbox/ledger", timeout=5).status_code == 405
    assert requests.post(f"{base}/_sandbox/summary", timeout=5).status_code == 405
    missing = requests.get(f"{base}/nope", timeout=5)
    assert missing.headers["Content-Type"] == "application/json"
    assert "error" in missing.json()


def test_bad_control_requests_are_400(sandbox: RunningSandbox) -> None:
    base = sandbox.base_url
    for path, method, body in (
        ("/_sandbox/faults", "PUT", b"{not json"),
        ("/_sandbox/faults", "PUT", b"[1, 2]"),
        ("/_sandbox/clock", "PUT", b'{"offset": 1}'),
        ("/_sandbox/clock", "PUT", b'{"offset_seconds": "soon"}'),
        ("/_sandbox/trades", "POST", b'"just a string"'),
        ("/_sandbox/trades", "POST", b'{"trades": [1]}'),
        ("/_sandbox/trades", "POST", b"\xff\xfe"),
    ):
        response = requests.request(method, base + path, data=body, timeout=5)
        assert response.status_code == 400, (path, body, response.text)
        assert response.json()["error"]


def test_broken_http_does_not_hurt_the_server(sandbox: RunningSandbox) -> None:
    answer = raw_exchange(sandbox, b"THIS IS NOT HTTP\r\n\r\n")
    assert answer == b"" or answer.startswith(b"HTTP/1.1 400")
    raw_exchange(
        sandbox, b"POST /gateway.do HTTP/1.1\r\nContent-Length: 50\r\n\r\nshort", read=False
    )
    raw_exchange(sandbox, b"GET /gateway.do?service=" + b"x" * 5000, read=False)
    raw_exchange(sandbox, os.urandom(4096), read=False)
    weird = raw_exchange(sandbox, b"GET /gateway.do?\xff\xfe=\x80 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert weird.startswith(b"HTTP/1.1 ")
    assert sandbox.client.health()
    still_serving(sandbox)


def test_notify_verify_with_garbage_is_false_or_invalid(sandbox: RunningSandbox) -> None:
    url = sandbox.gateway_url
    assert requests.get(url, params={"service": "notify_verify"}, timeout=5).text == "invalid"
    query = {"service": "notify_verify", "partner": sandbox.partner, "notify_id": "\x00" * 50}
    assert requests.get(url, params=query, timeout=5).text == "false"


def test_garbage_executed_nothing_and_crashed_nothing(sandbox: RunningSandbox) -> None:
    summary = sandbox.client.summary()
    assert summary["double_executed"] == [] and summary["over_refunded"] == []
    assert summary["refunds_executed"] == summary["batches_accepted"]  # one item per batch
    log = sandbox.log_text()
    assert "sandbox.request.crashed" not in log
    assert "Traceback" not in log
