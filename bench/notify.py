"""(4) The notify receiver: POST /alipay/notify with 1000-item results.

Real notifications are needed (the receiver asks the gateway's `notify_verify`,
which answers `true` only for a notification it sent and that was not yet
acknowledged). So the bench submits batches of 1000 refunds to the sandbox
itself, with a `notify_url` pointing at a small capture server that answers
`fail` (the notifications stay unacknowledged), and replays the captured signed
forms to `refund-worker notify-server`. Each request then goes through the whole
path: body read, form decoding, the MD5 signature check, `notify_verify` against
the sandbox and a broker-confirmed enqueue (no worker runs, so the jobs stay queued).

Open loop: requests leave on a fixed schedule at 200/s and latency counts from the
scheduled moment, so a slow server cannot hide behind a slow client. Closed loop:
16 clients send back to back, for the throughput. The anchor is a WSGI app that
answers `success` without looking (`bench.bare_receiver`) under the same gunicorn
settings, driven by the same load generator.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests

from bench.common import Context, Row, percentile, trade_no, wait_until
from devtools.devstack import Stack, StackConfig, free_port
from worker.mapi import (
    Merchant,
    RefundItem,
    build_refund_request,
    encode_form,
    gateway_url_with_charset,
    make_batch_no,
    parse_sync_response,
)

RATE = 200.0
LIMIT = 0.050
ITEMS = 1000
CLIENTS = 16
PARTNER = "2088000000000001"  # the devstack's partner


@dataclass(frozen=True)
class Captured:
    body: bytes
    content_type: str


class _Capture:
    """An HTTP server that keeps every POST body and answers `fail`."""

    def __init__(self) -> None:
        self.bodies: dict[bytes, Captured] = {}
        self.port = free_port()
        capture = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                key = body.split(b"notify_id=", 1)[-1].split(b"&", 1)[0]
                capture.bodies.setdefault(
                    key, Captured(body, self.headers.get("Content-Type") or "")
                )
                self.send_response(200)
                self.send_header("Content-Length", "4")
                self.end_headers()
                self.wfile.write(b"fail")

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _notifications(stack: Stack, count: int) -> list[Captured]:
    """`count` genuine 1000-item notifications from the sandbox, captured unacknowledged."""
    capture = _Capture()
    try:
        merchant = Merchant(
            partner=PARTNER,
            charset="utf-8",
            sign_type="MD5",
            md5_key=stack.md5_key,
            notify_url=f"http://127.0.0.1:{capture.port}/alipay/notify",
        )
        url = gateway_url_with_charset(stack.gateway_url, "utf-8")
        headers = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
        now = datetime.now(UTC)
        serial = int(time.time()) % 100_000 * 1000
        with requests.Session() as session:
            for n in range(count):
                items = [
                    RefundItem(trade_no(900_000 + i), Decimal("0.01"), "bench")
                    for i in range(ITEMS)
                ]
                params = build_refund_request(
                    merchant, batch_no=make_batch_no(now, serial + n + 1), items=items, now=now
                )
                answer = session.post(
                    url, data=encode_form(params, "utf-8"), headers=headers, timeout=30
                )
                if not parse_sync_response(answer.content).accepted:
                    raise RuntimeError(f"the sandbox refused a batch: {answer.content[:200]!r}")
        if not wait_until(lambda: len(capture.bodies) >= count, 60):
            raise TimeoutError(f"only {len(capture.bodies)} of {count} notifications came")
        return list(capture.bodies.values())
    finally:
        capture.close()


@dataclass
class Load:
    latencies: list[float]
    failures: int
    seconds: float

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds


def _open_loop(url: str, forms: list[Captured], rate: float, seconds: float) -> Load:
    """Requests leave at fixed times; each latency counts from its scheduled time."""
    total = int(rate * seconds)
    lock = threading.Lock()
    cursor = iter(range(total))
    latencies: list[float] = []
    failures = [0]
    start = time.perf_counter() + 0.2

    def client() -> None:
        with requests.Session() as session:
            while True:
                with lock:
                    n = next(cursor, None)
                if n is None:
                    return
                due = start + n / rate
                pause = due - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
                form = forms[n % len(forms)]
                answer = session.post(
                    url, data=form.body, headers={"Content-Type": form.content_type}, timeout=30
                )
                took = time.perf_counter() - due
                with lock:
                    latencies.append(took)
                    failures[0] += answer.content != b"success"

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return Load(latencies, failures[0], time.perf_counter() - start)


def _closed_loop(url: str, forms: list[Captured], seconds: float) -> Load:
    """CLIENTS clients send back to back for `seconds`."""
    lock = threading.Lock()
    latencies: list[float] = []
    failures = [0]
    stop_at = time.perf_counter() + seconds

    def client(offset: int) -> None:
        n = offset
        with requests.Session() as session:
            while time.perf_counter() < stop_at:
                form = forms[n % len(forms)]
                n += CLIENTS
                started = time.perf_counter()
                answer = session.post(
                    url, data=form.body, headers={"Content-Type": form.content_type}, timeout=30
                )
                took = time.perf_counter() - started
                with lock:
                    latencies.append(took)
                    failures[0] += answer.content != b"success"

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return Load(latencies, failures[0], time.perf_counter() - started)


@contextmanager
def _bare_server() -> Iterator[str]:
    port = free_port()
    argv = [
        sys.executable, "-m", "gunicorn", "--worker-class", "gthread", "--workers", "1",
        "--threads", "8", "--bind", f"127.0.0.1:{port}", "--log-level", "warning",
        "bench.bare_receiver:app",
    ]  # fmt: skip
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/alipay/notify"

    def up() -> bool:
        try:
            return requests.post(url, data=b"x", timeout=1).ok
        except requests.RequestException:
            return False

    try:
        if not wait_until(up, 30):
            raise RuntimeError("the bare receiver did not start")
        yield url
    finally:
        process.terminate()
        process.wait(10)


def measure(ctx: Context) -> list[Row]:
    seconds = ctx.size(15, 4)
    closed_seconds = ctx.size(8, 3)
    config = StackConfig(
        workdir=ctx.workdir / "notify",
        roles={"notify-server": 1},
        time_factor=1.0,  # the sandbox does not resend to the capture server meanwhile
        sandbox_args=["--process-delay", "0.05"],
    )
    with Stack(config) as stack:
        forms = _notifications(stack, ctx.size(20, 5))
        size = sum(len(f.body) for f in forms) // len(forms)
        print(f"  {len(forms)} notifications captured, {size:,} bytes each", flush=True)
        url = f"http://127.0.0.1:{stack.notify_port}/alipay/notify"
        _closed_loop(url, forms, 1.0)  # warm up connections and the gunicorn worker
        real = _open_loop(url, forms, RATE, seconds)
        real_max = _closed_loop(url, forms, closed_seconds)
    with _bare_server() as bare_url:
        _closed_loop(bare_url, forms, 1.0)
        bare = _open_loop(bare_url, forms, RATE, seconds)
        bare_max = _closed_loop(bare_url, forms, closed_seconds)
    p50, p99 = percentile(real.latencies, 50), percentile(real.latencies, 99)
    b50, b99 = percentile(bare.latencies, 50), percentile(bare.latencies, 99)
    print(f"  receiver p50 {p50 * 1000:.1f} ms p99 {p99 * 1000:.1f} ms at {real.rate:.0f}/s; "
          f"bare p99 {b99 * 1000:.1f} ms; max {real_max.rate:.0f}/s vs {bare_max.rate:.0f}/s",
          flush=True)  # fmt: skip
    failed = real.failures + real_max.failures
    max_p99 = percentile(real_max.latencies, 99)
    note = (
        f"{size // 1024} KiB bodies; {len(real.latencies):,} requests at {RATE:.0f}/s"
        f" over {seconds} s, then {CLIENTS} clients back to back for {closed_seconds} s; "
        f"{failed} answered other than `success`"
    )
    return [
        Row(
            measure=(
                f"(4a) notify receiver at {RATE:.0f} req/s: 1000-item notification, signature,"
                " notify_verify, confirmed enqueue"
            ),
            figure=f"p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms",
            anchor=f"bare gunicorn app p50 {b50 * 1000:.1f} ms, p99 {b99 * 1000:.1f} ms",
            ratio=p99 / LIMIT,
            target=f"p99 <= {LIMIT * 1000:.0f} ms",
            met=p99 <= LIMIT and failed == 0,
            note=note,
        ),
        Row(
            measure=f"(4b) notify receiver throughput, {CLIENTS} clients",
            figure=f"{real_max.rate:,.0f} req/s (p99 {max_p99 * 1000:.0f} ms)",
            anchor=f"bare gunicorn app {bare_max.rate:,.0f} req/s",
            ratio=real_max.rate / bare_max.rate,
            target=f">= {RATE:.0f} req/s",
            met=real_max.rate >= RATE and failed == 0,
        ),
    ]
