"""The whole stack on one machine: a fresh database, bus names, the sandbox gateway
and every role as its own process.

Used by `refund-worker demo`, the end-to-end and fault tests and the benchmarks,
so all of them run the same processes a deployment runs. Everything it creates is
named with a random run id and removed on exit.

A single-merchant stack has an OpenAPI application too (`openapi_app_id`, None for
none; `devtools.openapi_app`): the sandbox serves it, and the roles, started after the
sandbox, get its settings with the sandbox's OpenAPI public key.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import psycopg

from devtools.openapi_app import DEFAULT_APP_ID, StackApp
from devtools.processes import RoleProcess, free_port, signal_group, stop_process
from worker.adapters.dramatiq import jobs
from worker.adapters.postgres.pool import migrate
from worker.adapters.rabbitmq import (
    BusConnection,
    Publisher,
    Topology,
    default_connection_name,
    delete_topology,
    delivery_from,
)
from worker.services.ports import Delivery, OutMessage

ROLES = ("intake", "worker", "notify-server", "relay", "scheduler")
DEFAULT_ADMIN_DB = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_AMQP = "amqp://guest:guest@127.0.0.1:5672/%2F"


def _with_db(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


@dataclass
class StackConfig:
    workdir: Path
    admin_db_url: str = DEFAULT_ADMIN_DB
    amqp_url: str = DEFAULT_AMQP
    batch_max_items: int = 1000
    batch_max_wait: float = 0.5
    time_factor: float = 0.001
    roles: Mapping[str, int] = field(default_factory=lambda: {r: 1 for r in ROLES})
    extra_env: Mapping[str, str] = field(default_factory=dict)
    sandbox_args: Sequence[str] = ()
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:10])
    keep: bool = False
    md5_key: str | None = None  # a random key per run when not given
    # A merchants file (`ALIPAY_MERCHANTS_FILE`) instead of the single-merchant variables;
    # the sandbox is then started with `sandbox_args` that serve those merchants.
    merchants_file: Path | None = None
    default_partner: str = "2088000000000001"
    # The OpenAPI app of a single-merchant stack (None: none); its RSA2 private key
    # (PEM), a new pair per run when not given.
    openapi_app_id: str | None = DEFAULT_APP_ID
    openapi_app_private_key: bytes | None = field(default=None, repr=False)


class Stack:
    """Context manager: everything up on enter, everything down and removed on exit."""

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        rid = config.run_id
        self.db_name = f"refund_stack_{rid}"
        self.database_url = _with_db(config.admin_db_url, self.db_name)
        self.exchange = f"refunds-stack-{rid}"
        self.topology = Topology.for_exchange(self.exchange)
        self.observer_queue = f"{self.exchange}.observer.completed"
        self.md5_key = config.md5_key or secrets.token_hex(16)
        self.sandbox_port = free_port()
        self.notify_port = free_port()
        self.console_port = free_port()
        self.logs = config.workdir / "logs"
        self.processes: dict[tuple[str, int], RoleProcess] = {}
        self.sandbox_process: RoleProcess | None = None
        self._observer: BusConnection | None = None
        self._observer_channel: Any = None
        self.completed: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.app: StackApp | None = None
        if config.openapi_app_id is not None and config.merchants_file is None:
            self.app = StackApp(
                config.workdir / "openapi", config.openapi_app_id, config.openapi_app_private_key
            )

    # --- configuration --------------------------------------------------------------

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.sandbox_port}/gateway.do"

    @property
    def sandbox_url(self) -> str:
        return f"http://127.0.0.1:{self.sandbox_port}"

    @property
    def openapi_gateway_url(self) -> str:
        return f"{self.sandbox_url}/openapi/gateway.do"

    @property
    def console_url(self) -> str:
        return f"http://127.0.0.1:{self.console_port}"

    @property
    def default_partner(self) -> str:
        return self.config.default_partner

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.config.merchants_file is not None:
            merchants = {"ALIPAY_MERCHANTS_FILE": str(self.config.merchants_file)}
        else:
            merchants = {
                "ALIPAY_PARTNER": self.default_partner,
                "ALIPAY_SIGN_TYPE": "MD5",
                "ALIPAY_MD5_KEY": self.md5_key,
                "ALIPAY_INPUT_CHARSET": "utf-8",
            }
        env.update(
            {
                "AMQP_URL": self.config.amqp_url,
                "DATABASE_URL": self.database_url,
                "REFUND_EXCHANGE": self.exchange,
                "ALIPAY_GATEWAY_URL": self.gateway_url,
                **merchants,
                "ALIPAY_NOTIFY_URL": f"http://127.0.0.1:{self.notify_port}/alipay/notify",
                "ALIPAY_DBACK_NOTIFY_URL": f"http://127.0.0.1:{self.notify_port}/alipay/dback-notify",
                "NOTIFY_BIND": f"127.0.0.1:{self.notify_port}",
                "CONSOLE_BIND": f"127.0.0.1:{self.console_port}",
                "BATCH_MAX_ITEMS": str(self.config.batch_max_items),
                "BATCH_MAX_WAIT_SECONDS": str(self.config.batch_max_wait),
                "LOG_FORMAT": "json",
                "PYTHONUNBUFFERED": "1",
            }
        )
        if self.app is not None:
            env.update(
                self.app.env(
                    gateway_url=self.openapi_gateway_url,
                    notify_url=f"http://127.0.0.1:{self.notify_port}/alipay/openapi-notify",
                )
            )
        env.update(self.config.extra_env)
        return env

    # --- lifecycle ----------------------------------------------------------------------

    def __enter__(self) -> Stack:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        with psycopg.connect(self.config.admin_db_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.db_name}"')
        migrate(self.database_url, default_partner=self.default_partner)
        self.start_sandbox()
        self._declare_bus()
        for role, replicas in self.config.roles.items():
            for index in range(replicas):
                self.start_role(role, index)

    def _spawn(self, name: str, argv: list[str]) -> RoleProcess:
        log = (self.logs / f"{name}.log").open("ab")
        process = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, env=self.env(), start_new_session=True
        )
        role, _, index = name.rpartition("-")
        return RoleProcess(role, int(index) if index.isdigit() else 0, process, log)

    def start_sandbox(self) -> None:
        argv = [
            sys.executable,
            "-m",
            "worker.entrypoints.cli",
            "sandbox",
            "--bind",
            f"127.0.0.1:{self.sandbox_port}",
            "--state-dir",
            str(self.config.workdir / "sandbox"),
            "--time-factor",
            str(self.config.time_factor),
            *(self.app.sandbox_args() if self.app is not None else ()),
            *self.config.sandbox_args,
        ]
        if self.app is not None and not self.app.private_key_file.exists():
            self.app.write_keys()
        self.sandbox_process = self._spawn("sandbox-0", argv)
        self._wait_http(f"{self.sandbox_url}/_sandbox/summary", "sandbox")
        if self.app is not None:  # the roles start after this: they get the sandbox's key
            from sandbox.client import SandboxClient

            with SandboxClient(self.sandbox_url) as client:
                self.app.take_alipay_key(client.info())

    def stop_sandbox(self, sig: int = signal.SIGTERM) -> None:
        if self.sandbox_process is not None:
            stop_process(self.sandbox_process, sig)
            self.sandbox_process = None

    def start_process(self, name: str, argv: list[str], index: int = 0) -> RoleProcess:
        """Start a command with the stack's environment; it is stopped with the roles."""
        proc = self._spawn(f"{name}-{index}", argv)
        self.processes[(name, index)] = proc
        return proc

    def start_role(self, role: str, index: int = 0) -> RoleProcess:
        proc = self.start_process(
            role, [sys.executable, "-m", "worker.entrypoints.cli", role], index
        )
        if role == "notify-server" and index == 0:
            self._wait_http(f"http://127.0.0.1:{self.notify_port}/healthz", "notify-server")
        if role == "console" and index == 0:
            self._wait_http(f"{self.console_url}/healthz", "console")
        return proc

    def add_operator(self, name: str, password: str) -> None:
        """`refund-worker operators add NAME --password-stdin`, as an operator would."""
        subprocess.run(
            [
                sys.executable,
                "-m",
                "worker.entrypoints.cli",
                "operators",
                "add",
                name,
                "--password-stdin",
            ],
            input=f"{password}\n".encode(),
            env=self.env(),
            check=True,
            capture_output=True,
            timeout=60,
        )

    def kill_role(self, role: str, index: int = 0, sig: int = signal.SIGKILL) -> None:
        proc = self.processes.pop((role, index), None)
        if proc is not None:
            stop_process(proc, sig)

    def _wait_http(self, url: str, what: str, timeout: float = 30.0) -> None:
        import requests

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if requests.get(url, timeout=1).status_code < 500:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{what} did not answer at {url} within {timeout} s")

    def _declare_bus(self) -> None:
        settings = self.env()
        queue_type = settings.get("INTAKE_QUEUE_TYPE", "quorum")
        limit = int(settings.get("INTAKE_DELIVERY_LIMIT", "5"))
        self._observer = BusConnection(
            self.config.amqp_url, connection_name=default_connection_name("observer")
        )
        self._observer.connect()
        self._observer.declare_intake(
            self.topology,
            queue_type=queue_type,  # type: ignore[arg-type]
            delivery_limit=limit,
        )
        channel = self._observer.channel()
        channel.queue_declare(self.observer_queue, durable=True)
        channel.queue_bind(self.observer_queue, self.exchange, routing_key=Topology.COMPLETED)
        self._observer_channel = channel

    def stop(self) -> None:
        for proc in list(self.processes.values()):
            signal_group(proc, signal.SIGTERM)
        for proc in list(self.processes.values()):
            stop_process(proc, signal.SIGTERM)
        self.processes.clear()
        self.stop_sandbox()
        if self._observer is not None:
            self._observer.close()
            self._observer = None
        if self.config.keep:
            return
        try:
            delete_topology(self.config.amqp_url, self.topology)
            with BusConnection(
                self.config.amqp_url, connection_name=default_connection_name("cleanup")
            ) as bus:
                channel = bus.channel()
                names = [self.observer_queue]
                for base in jobs.job_queues(self.exchange):
                    names += [base, f"{base}.DQ", f"{base}.XQ"]
                for name in names:
                    channel.queue_delete(name)
        except Exception:  # best effort: the names are unique to this run
            pass
        with psycopg.connect(self.config.admin_db_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')
        shutil.rmtree(self.config.workdir / "sandbox", ignore_errors=True)
        shutil.rmtree(self.config.workdir / "openapi", ignore_errors=True)

    # --- traffic --------------------------------------------------------------------------

    def publish(self, events: Iterable[Mapping[str, Any] | bytes], batch: int = 1000) -> int:
        """Publish refund.requested messages (dicts as JSON, bytes as they are)."""
        count = 0
        with BusConnection(
            self.config.amqp_url, connection_name=default_connection_name("publisher")
        ) as bus:
            publisher = Publisher(bus, self.topology)
            pending: list[OutMessage] = []
            for event in events:
                if isinstance(event, bytes):
                    body, message_id = event, uuid.uuid4().hex
                else:
                    body = json.dumps(event, ensure_ascii=False).encode()
                    message_id = str(event.get("event_id") or uuid.uuid4().hex)
                pending.append(OutMessage(Topology.REQUESTED, body, message_id))
                if len(pending) >= batch:
                    publisher.publish_batch(pending)
                    count += len(pending)
                    pending = []
            if pending:
                publisher.publish_batch(pending)
                count += len(pending)
        return count

    def collect(self, expected: Iterable[str], timeout: float) -> dict[str, list[dict[str, Any]]]:
        """Read refund.completed events until every expected refund_id has one, or timeout."""
        wanted = set(expected)
        deadline = time.monotonic() + timeout
        channel = self._observer_channel
        assert channel is not None, "stack not started"
        while time.monotonic() < deadline and not wanted <= set(self.completed):
            method, _props, body = channel.basic_get(self.observer_queue, auto_ack=True)
            if method is None:
                assert self._observer is not None
                self._observer.process_events(0.05)
                continue
            event = json.loads(body)
            self.completed[str(event["refund_id"])].append(event)
        return dict(self.completed)

    def dead_letters(self) -> list[Delivery]:
        """Take every message in the intake dead-letter queue."""
        channel = self._observer_channel
        taken: list[Delivery] = []
        while True:
            method, props, body = channel.basic_get(self.topology.dead_letter_queue, auto_ack=True)
            if method is None:
                return taken
            taken.append(delivery_from(method, props, body))

    def query(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.database_url) as conn:
            return conn.execute(sql, params).fetchall()

    def log_lines(self) -> list[dict[str, Any]]:
        """Every JSON log line written by every process of the stack."""
        lines = []
        for path in sorted(self.logs.glob("*.log")):
            for raw in path.read_text(encoding="utf-8", errors="replace").splitlines():
                try:
                    lines.append(json.loads(raw))
                except ValueError:
                    lines.append({"event": "unparsed", "raw": raw, "file": path.name})
        return lines
