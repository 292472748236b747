"""The two ends of the sandbox benchmark (`bench.sandbox_bench`): requests and a receiver.

`prepare` builds and signs every refund request before the clock starts (each
with a fresh batch_no; pools of trades reused across batches, at most 50
refunds each); `receiver_main` is the trivial notify receiver run in its own
process, answering `success` to every POST once its gate is open. Moved out
of `bench.sandbox_bench`, which runs the scenarios.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from worker.mapi import (
    Merchant,
    RefundItem,
    build_refund_request,
    encode_form,
    gateway_url_with_charset,
    make_batch_no,
    sign,
)

__all__ = ["TRADE_BASE", "Prepared", "prepare", "receiver_main"]

TRADE_BASE = 2016081821001004270000000000


# --------------------------------------------------------------------------
# A receiver that only says "success"
# --------------------------------------------------------------------------


def receiver_main(port: int, ready: Any, gate: Any) -> None:
    """Answer `success` to every POST, once `gate` is open (it starts open unless told)."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # The answer goes out as headers then body: without TCP_NODELAY the body
        # waits for the sender's delayed ACK (40 ms) on every kept-alive post.
        disable_nagle_algorithm = True

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            gate.wait()
            self.send_response(200)
            self.send_header("Content-Length", "7")
            self.end_headers()
            self.wfile.write(b"success")

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    ready.set()
    server.serve_forever()


# --------------------------------------------------------------------------
# Requests, built before the clock starts
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Prepared:
    url: str
    body: bytes
    headers: dict[str, str]


def prepare(
    *,
    count: int,
    items: int,
    sign_type: str,
    charset: str,
    md5_key: str,
    private_key: bytes | None,
    partner: str,
    gateway_url: str,
    notify_url: str,
) -> list[Prepared]:
    """`count` signed requests; each pool of `items` trades serves at most 50 batches."""
    merchant = Merchant(
        partner=partner,
        charset=charset,
        sign_type=sign_type,
        md5_key=md5_key if sign_type == "MD5" else None,
        private_key_pem=private_key if sign_type == "RSA" else None,
        notify_url=notify_url,
    )
    now = datetime.now(UTC)
    url = gateway_url_with_charset(gateway_url, charset)
    headers = {"Content-Type": f"application/x-www-form-urlencoded; charset={charset}"}
    pools = max(1, -(-count // 50))
    templates: list[tuple[dict[str, str], bytes]] = []
    for pool in range(pools):
        refund_items = [
            RefundItem(str(TRADE_BASE + pool * items + i), Decimal("0.01"), "协商退款 bench")
            for i in range(items)
        ]
        params = build_refund_request(
            merchant, batch_no=make_batch_no(now, 1), items=refund_items, now=now
        )
        detail = encode_form({"detail_data": params["detail_data"]}, charset)
        templates.append((params, detail))
    prepared: list[Prepared] = []
    serial = int.from_bytes(secrets.token_bytes(3), "big") * 10_000
    for index in range(count):
        params, detail = templates[index % pools]
        params = dict(params)
        params["batch_no"] = make_batch_no(now, serial + index + 1)
        params.pop("sign")
        params["sign"] = sign(
            params,
            sign_type=sign_type,
            charset=charset,
            md5_key=merchant.md5_key,
            private_key_pem=merchant.private_key_pem,
        )
        head = {k: v for k, v in params.items() if k != "detail_data"}
        prepared.append(Prepared(url, encode_form(head, charset) + b"&" + detail, headers))
    return prepared
