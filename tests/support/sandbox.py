"""Run the sandbox gateway as a subprocess for a test, and receive its notifications.

    with run_sandbox(time_factor=0.0001) as sb:
        sb.client.create_trade(...)
        requests.post(sb.gateway_url, ...)
        sb.client.wait_idle()

`run_sandbox` starts `refund-worker sandbox` on a free port with a temporary
state directory (or the one given, to test restarts), passes the MD5 key
through the environment (never the command line), waits until the sandbox
answers its health check, yields a `RunningSandbox` and stops the process
group afterwards (SIGTERM, then SIGKILL). `NotifyReceiver` is a small
threaded HTTP server standing in for the merchant's notify_url: it records
every POST and answers what the test scripts (`success` by default).

`merchant_rsa_keys` makes a merchant key pair for RSA tests (cached per
process: generating 2048-bit keys takes a moment).

`query_params` / `query` / `query_items` sign, send and read the refund
query `refund_fastpay_query` the way public integrations do.

OpenAPI: `run_sandbox(app_id=APP_ID)` serves an OpenAPI app for the default
partner (a key pair made once per process, `openapi_app_keys`);
`RunningSandbox.openapi_app()` is the `worker.openapi.OpenApiApp` to build
requests with, `openapi_public_key` the sandbox's OpenAPI key verifying its
answers and notifications, `openapi_gateway_url` where to POST.

The request helpers (`trade_no`, `refund_params`, `resign`, `submit`,
`query_params`, `query`, `query_answer`, `query_items`) live in
`tests.support.mapi_requests`, the receiver in `tests.support.notify_receiver`;
both are re-exported here.

`partners_toml` writes the text of a `--partners-file` (several partners in
one sandbox); pass the file with `extra_args=["--partners-file", path]` and
`rsa_merchant=False`, so that no single-partner option adds another one.
"""

from __future__ import annotations

import functools
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from sandbox.client import SandboxClient
from tests.support.mapi_requests import (
    PARTNER,
    QUERY_SERVICE,
    form_headers,
    query,
    query_answer,
    query_items,
    query_params,
    refund_params,
    resign,
    submit,
    trade_no,
)
from tests.support.net import free_port
from tests.support.notify_receiver import NotifyReceiver, ReceivedNotify
from worker.openapi import OpenApiApp

__all__ = [
    "APP_ID",
    "PARTNER",
    "QUERY_SERVICE",
    "NotifyReceiver",
    "ReceivedNotify",
    "RunningSandbox",
    "form_headers",
    "free_port",
    "merchant_rsa_keys",
    "openapi_app_keys",
    "partners_toml",
    "query",
    "query_answer",
    "query_items",
    "query_params",
    "refund_params",
    "resign",
    "run_sandbox",
    "submit",
    "trade_no",
]

APP_ID = "2021000000000001"
REPO = Path(__file__).resolve().parents[2]


@functools.lru_cache(maxsize=1)
def merchant_rsa_keys() -> tuple[bytes, bytes]:
    """(private PEM, public PEM) of a merchant RSA key pair, made once per process."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


@functools.lru_cache(maxsize=1)
def openapi_app_keys() -> tuple[bytes, bytes]:
    """(private PEM, public PEM) of an OpenAPI app's key pair, made once per process."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


def partners_toml(entries: Sequence[Mapping[str, str]]) -> str:
    """The text of a partners file: one `[[partners]]` table per entry, every value a string."""
    import json

    tables = []
    for entry in entries:
        lines = [f"{key} = {json.dumps(str(value))}" for key, value in entry.items()]
        tables.append("\n".join(["[[partners]]", *lines]))
    return "\n\n".join(tables) + "\n"


@dataclass
class RunningSandbox:
    """A sandbox process started by `run_sandbox`, and what a test needs to talk to it."""

    process: subprocess.Popen[bytes]
    port: int
    state_dir: Path
    log_path: Path
    md5_key: str
    partner: str
    client: SandboxClient
    merchant_private_key: bytes | None
    app_id: str | None = None
    app_private_key: bytes | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def openapi_gateway_url(self) -> str:
        return f"{self.base_url}/openapi/gateway.do"

    @property
    def openapi_public_key(self) -> bytes:
        """The sandbox's OpenAPI "Alipay" public key (verifies answers and notifications)."""
        return (self.state_dir / "openapi_alipay_public_key.pem").read_bytes()

    def openapi_app(self) -> OpenApiApp:
        """The app `run_sandbox(app_id=...)` serves, as the worker's protocol knows it."""
        assert self.app_id is not None and self.app_private_key is not None
        return OpenApiApp(self.app_id, self.app_private_key, self.openapi_public_key)

    @property
    def gateway_url(self) -> str:
        return f"{self.base_url}/gateway.do"

    @property
    def alipay_public_key(self) -> bytes:
        """The sandbox's own "Alipay" public key (verifies RSA notifications)."""
        return (self.state_dir / "alipay_public_key.pem").read_bytes()

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self, sig: int = signal.SIGINT, timeout: float = 15.0) -> int:
        """Stop the sandbox with `sig` and wait; SIGKILL if it lingers. Returns the exit code.

        SIGINT (the default) is gunicorn's quick shutdown: well under a second.
        SIGTERM is the graceful one a pod gets: it waits up to 2 s for idle
        keep-alive connections. SIGKILL goes to the whole process group: a crash.
        """
        return _stop(self.process, sig, timeout)


def _stop(process: subprocess.Popen[bytes], sig: int, timeout: float) -> int:
    if process.poll() is None:
        if sig == signal.SIGKILL:
            _signal_group(process, sig)
        else:
            with suppress(ProcessLookupError):
                process.send_signal(sig)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            _signal_group(process, signal.SIGKILL)
            process.wait(10)
    # The worker leaves within a second of its master; do not leave it behind.
    _signal_group(process, signal.SIGKILL)
    return int(process.returncode)


def _signal_group(process: subprocess.Popen[bytes], sig: int) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)


@contextmanager
def run_sandbox(
    *,
    state_dir: Path | None = None,
    port: int | None = None,
    md5_key: str | None = None,
    partner: str = PARTNER,
    rsa_merchant: bool = True,
    time_factor: float = 0.0001,
    process_delay: float = 1.0,
    faults: Mapping[str, Any] | None = None,
    seed: int | None = 1,
    auto_trades: bool = True,
    notify_verify_seconds: float | None = None,
    refund_limit_mode: str | None = None,
    app_id: str | None = None,
    extra_args: Sequence[str] = (),
    ready_timeout: float = 30.0,
) -> Iterator[RunningSandbox]:
    """Start a sandbox subprocess, wait until it serves, yield it, stop it (see module doc)."""
    import json

    root = Path(tempfile.mkdtemp(prefix="sandbox-test-"))
    state = root / "state" if state_dir is None else state_dir
    key = md5_key or secrets.token_hex(16)
    private_pem: bytes | None = None
    argv = [
        sys.executable,
        "-m",
        "worker.entrypoints.cli",
        "sandbox",
        "--bind",
        f"127.0.0.1:{port or free_port()}",
        "--state-dir",
        str(state),
        "--time-factor",
        repr(time_factor),
        "--process-delay",
        repr(process_delay),
        "--threads",
        "16",
        "--senders",
        "4",
        "--log-format",
        "json",
        "--auto-trades" if auto_trades else "--no-auto-trades",
    ]
    if seed is not None:
        argv += ["--seed", str(seed)]
    if faults is not None:
        argv += ["--faults", json.dumps(dict(faults))]
    if notify_verify_seconds is not None:
        argv += ["--notify-verify-seconds", repr(notify_verify_seconds)]
    if refund_limit_mode is not None:
        argv += ["--refund-limit-mode", refund_limit_mode]
    if rsa_merchant:
        private_pem, public_pem = merchant_rsa_keys()
        public_path = root / "merchant_public_key.pem"
        public_path.write_bytes(public_pem)
        argv += ["--merchant-public-key-file", str(public_path)]
    app_private: bytes | None = None
    if app_id is not None:
        app_private, app_public = openapi_app_keys()
        app_path = root / "app_public_key.pem"
        app_path.write_bytes(app_public)
        argv += ["--app-id", app_id, "--app-public-key-file", str(app_path)]
    argv += list(extra_args)
    bound_port = int(argv[argv.index("--bind") + 1].rsplit(":", 1)[1])
    env = dict(os.environ)
    env.update({"ALIPAY_MD5_KEY": key, "ALIPAY_PARTNER": partner, "PYTHONUNBUFFERED": "1"})
    env.pop("ALIPAY_MD5_KEY_FILE", None)
    env.pop("SANDBOX_NOTIFY_VERIFY_SECONDS", None)
    env.pop("SANDBOX_REFUND_LIMIT_MODE", None)
    log_path = root / f"sandbox-{bound_port}.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=REPO,
            start_new_session=True,
        )
    client = SandboxClient(f"http://127.0.0.1:{bound_port}", timeout=10.0)
    running = RunningSandbox(
        process=process,
        port=bound_port,
        state_dir=state,
        log_path=log_path,
        md5_key=key,
        partner=partner,
        client=client,
        merchant_private_key=private_pem,
        app_id=app_id,
        app_private_key=app_private,
    )
    try:
        deadline = time.monotonic() + ready_timeout
        while not client.health():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"sandbox did not start (exit {process.poll()}):\n{running.log_text()[-3000:]}"
                )
            time.sleep(0.05)
        yield running
    finally:
        client.close()  # first: gunicorn lingers up to 2 s on open keep-alive connections
        running.stop()
        shutil.rmtree(root, ignore_errors=True)
