"""`refund-worker notify-server` as a process for the integration tests, and its queue.

`start_server` runs the notify server (gunicorn) on a free port against a
real RabbitMQ with its own exchange, MD5 key and charset, and waits for its
health check; `Server` is the running process (its logs, `stop`).
`queued_messages` takes every message from its notification queue,
`delete_queues` removes the queues afterwards. Moved out of
`tests/integration/test_notify_server.py`, shared with
`tests/integration/test_openapi_notify.py`.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pika
import requests

from tests.support.net import free_port
from worker.adapters.dramatiq.jobs import notify_queue

__all__ = [
    "AMQP_URL",
    "PARTNER",
    "STARTUP_SECONDS",
    "Server",
    "delete_queues",
    "queued_messages",
    "start_server",
]

AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
PARTNER = "2088101008267254"
STARTUP_SECONDS = 30.0


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    url: str
    log_path: Path
    md5_key: str
    exchange: str
    charset: str
    extra: dict[str, str] = field(default_factory=dict)

    def logs(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise


def start_server(
    tmp_path: Path,
    gateway_url: str,
    *,
    env: dict[str, str] | None = None,
    charset: str = "gbk",
    md5_key: str | None = None,
) -> Server:
    port = free_port()
    md5_key = md5_key or secrets.token_hex(16)
    exchange = f"test-notify-{uuid.uuid4().hex[:12]}"
    environment = {
        **os.environ,
        "AMQP_URL": AMQP_URL,
        "REFUND_EXCHANGE": exchange,
        "ALIPAY_GATEWAY_URL": gateway_url,
        "ALIPAY_PARTNER": PARTNER,
        "ALIPAY_SIGN_TYPE": "MD5",
        "ALIPAY_MD5_KEY": md5_key,
        "ALIPAY_INPUT_CHARSET": charset,
        "GATEWAY_CONNECT_TIMEOUT": "1",
        "GATEWAY_READ_TIMEOUT": "5",
        "NOTIFY_MAX_BODY_BYTES": "8192",
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "INFO",
        **(env or {}),
    }
    log_path = tmp_path / f"notify-server-{port}.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "worker.entrypoints.cli",
                "notify-server",
                "--bind",
                f"127.0.0.1:{port}",
                "--threads",
                "4",
                "--body-timeout",
                "1",
                "--graceful-timeout",
                "10",
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=environment,
            start_new_session=True,
        )
    server = Server(process, f"http://127.0.0.1:{port}", log_path, md5_key, exchange, charset)
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"notify-server exited early:\n{server.logs()}")
        try:
            if requests.get(f"{server.url}/healthz", timeout=1).status_code == 200:
                return server
        except requests.RequestException:
            time.sleep(0.1)
    server.stop(signal.SIGKILL)
    raise AssertionError(f"notify-server did not start:\n{server.logs()}")


def delete_queues(exchange: str) -> None:
    queue = notify_queue(exchange)
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    try:
        channel = connection.channel()
        for name in (queue, f"{queue}.DQ", f"{queue}.XQ"):
            channel.queue_delete(name)
    finally:
        connection.close()


def queued_messages(exchange: str) -> list[dict[str, Any]]:
    """Take every message from the server's notification queue."""
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    messages: list[dict[str, Any]] = []
    try:
        channel = connection.channel()
        try:
            channel.queue_declare(notify_queue(exchange), passive=True)
        except pika.exceptions.ChannelClosedByBroker:
            return messages
        while True:
            method, _properties, body = channel.basic_get(notify_queue(exchange), auto_ack=True)
            if method is None:
                return messages
            messages.append(json.loads(body))
    finally:
        if connection.is_open:
            connection.close()
