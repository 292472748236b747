"""Run the real operator console (`refund-worker console` under gunicorn) for a test.

    with run_console() as console:
        console.add_operator("alice", "a long password")
        requests.get(console.url + "/healthz")

`run_console` gives the console its own fresh database (`fresh_database`), its own
exchange (declared, and deleted afterwards, so the overview can peek at a real
dead-letter queue), a free port on 127.0.0.1, and stops the process group afterwards.
`add_operator` uses `refund-worker operators add NAME --password-stdin`, the way an
operator would.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import requests

from tests.support.db import fresh_database
from tests.support.net import free_port
from worker.adapters.postgres.pool import Database
from worker.adapters.rabbitmq import BusConnection, Topology, delete_topology

REPO = Path(__file__).resolve().parents[2]
AMQP_URL = os.environ.get("TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
CLI = [sys.executable, "-m", "worker.entrypoints.cli"]


@dataclass
class RunningConsole:
    url: str
    database_url: str
    topology: Topology
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes]

    def add_operator(self, name: str, password: str) -> None:
        subprocess.run(
            [*CLI, "operators", "add", name, "--password-stdin"],
            input=f"{password}\n".encode(),
            env=self.env,
            cwd=REPO,
            check=True,
            capture_output=True,
            timeout=60,
        )

    def operators(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`refund-worker operators ARGS` against the console's database."""
        return subprocess.run(
            [*CLI, "operators", *args],
            env=self.env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def database(self) -> Database:
        return Database(self.database_url, max_size=2, name="refund-worker-test")

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


def _wait_healthy(console: RunningConsole, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if console.process.poll() is not None:
            raise AssertionError(f"the console exited:\n{console.log_text()[-3000:]}")
        with suppress(requests.RequestException):
            if requests.get(f"{console.url}/healthz", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise AssertionError(f"the console never answered /healthz:\n{console.log_text()[-3000:]}")


@contextmanager
def run_console(
    *, extra_env: Mapping[str, str] | None = None, ready_timeout: float = 30.0
) -> Iterator[RunningConsole]:
    """Start a console on a fresh database and exchange; yield it; stop it (module doc)."""
    topology = Topology.for_exchange(f"test-console-{uuid.uuid4().hex[:10]}")
    with BusConnection(AMQP_URL) as bus:
        bus.declare_intake(topology, queue_type="quorum", delivery_limit=5)
    root = Path(tempfile.mkdtemp(prefix="console-test-"))
    try:
        with fresh_database("refund_console") as database_url:
            port = free_port()
            env = {k: v for k, v in os.environ.items() if not k.startswith(("ALIPAY_", "CONSOLE_"))}
            env.update(
                {
                    "DATABASE_URL": database_url,
                    "AMQP_URL": AMQP_URL,
                    "REFUND_EXCHANGE": topology.exchange,
                    "ALIPAY_MD5_KEY": secrets.token_hex(16),
                    "ALIPAY_GATEWAY_URL": f"http://127.0.0.1:{free_port()}/gateway.do",
                    "CONSOLE_BIND": f"127.0.0.1:{port}",
                    "CONSOLE_WORKERS": "2",
                    "LOG_FORMAT": "json",
                    "PYTHONUNBUFFERED": "1",
                    **(extra_env or {}),
                }
            )
            log_path = root / "console.log"
            with log_path.open("ab") as log:
                process = subprocess.Popen(
                    [*CLI, "console"],
                    env=env,
                    cwd=REPO,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            console = RunningConsole(
                f"http://127.0.0.1:{port}", database_url, topology, env, log_path, process
            )
            try:
                _wait_healthy(console, ready_timeout)
                yield console
            finally:
                _stop(process)
    finally:
        delete_topology(AMQP_URL, topology)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
