"""The servers under a chaos run: a RabbitMQ vhost per run, and outages of RabbitMQ and PostgreSQL.

Outages come in two strengths:

* `real`: the server itself goes down (`rabbitmqctl stop_app`/`start_app`;
  `pg_ctlcluster ... stop -m immediate`/`start`). This is what the suite proves and
  what CI runs; it disturbs everything else using those servers while it lasts.
* `scoped`: only this run's slice goes away: every connection of the run's vhost is
  closed and new ones are refused for the outage; the run's database refuses
  connections and its sessions are terminated. For a machine shared with others.

Every outage restores what it took away in a `finally` and waits until the server
answers again before it returns.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from urllib.parse import quote

import psycopg
import structlog

from worker.adapters.rabbitmq import BusConnection, bus_ping

log = structlog.get_logger("chaos.infra")

OUTAGE_MODES = ("real", "scoped")
AMQP_BASE = "amqp://guest:guest@127.0.0.1:5672"
ADMIN_DB = "postgresql://postgres@127.0.0.1:5432/postgres"


def _run(argv: list[str], timeout: float = 60.0) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def rabbitmqctl(*args: str, timeout: float = 60.0) -> str:
    return _run(["rabbitmqctl", "-q", *args], timeout)


def _answers(port: int) -> bool:
    with suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        return True
    return False


def wait_until(what: str, ready: object, timeout: float = 90.0) -> float:
    """Poll `ready()` (a callable returning bool or raising) until true; returns seconds taken."""
    assert callable(ready)
    started = time.monotonic()
    while True:
        try:
            if ready():
                return time.monotonic() - started
        except Exception:
            pass
        if time.monotonic() - started > timeout:
            raise RuntimeError(f"{what} did not come back within {timeout:.0f} s")
        time.sleep(0.2)


# --- RabbitMQ ------------------------------------------------------------------------------


class Vhost:
    """A RabbitMQ virtual host for one run (guest may do everything in it); deleted at the end."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.url = f"{AMQP_BASE}/{quote(name, safe='')}"
        self.keep = False  # leave it in place (a failed run's post-mortem)

    def __enter__(self) -> Vhost:
        rabbitmqctl("add_vhost", self.name)
        self.grant()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.keep:
            return
        with suppress(Exception):
            rabbitmqctl("delete_vhost", self.name)

    def grant(self) -> None:
        rabbitmqctl("set_permissions", "-p", self.name, "guest", ".*", ".*", ".*")

    def revoke(self) -> None:
        rabbitmqctl("clear_permissions", "-p", self.name, "guest")

    def close_connections(self, why: str) -> None:
        rabbitmqctl("close_all_connections", "--vhost", self.name, "--limit", "10000", why)

    def queue_names(self) -> list[str]:
        out = rabbitmqctl("list_queues", "-p", self.name, "name", "--no-table-headers")
        return sorted(line.strip() for line in out.splitlines() if line.strip())

    def queue_depths(self) -> dict[str, int]:
        """Messages ready in every queue of the vhost, exact at this moment.

        Read with passive declarations: the counts `rabbitmqctl list_queues` shows are
        statistics refreshed every few seconds, too stale to tell "empty" from "not yet".
        """
        depths: dict[str, int] = {}
        with BusConnection(self.url, connection_name="chaos.inspect") as bus:
            for name in self.queue_names():
                depths[name] = bus.message_count(name)
        return depths

    def unacked(self, settle_seconds: float = 12.0) -> dict[str, int]:
        """Messages delivered but not acknowledged, per queue (none when all work is done).

        These counts are periodic statistics: a non-zero count is read again until it
        has had time to refresh.
        """
        deadline = time.monotonic() + settle_seconds
        while True:
            out = rabbitmqctl(
                "list_queues",
                "-p",
                self.name,
                "name",
                "messages_unacknowledged",
                "--no-table-headers",
            )
            held = {}
            for line in out.splitlines():
                name, _, count = line.rpartition("\t")
                if name and count.strip() not in ("", "0"):
                    held[name] = int(count)
            if not held or time.monotonic() > deadline:
                return held
            time.sleep(1.0)


def _broker_answers(url: str) -> bool:
    bus_ping(url, timeout=2)
    return True


def wait_for_broker(url: str, timeout: float = 90.0) -> float:
    return wait_until("RabbitMQ", lambda: _broker_answers(url), timeout)


@contextmanager
def broker_outage(mode: str, vhost: Vhost) -> Iterator[None]:
    """RabbitMQ is away inside the block, and answers again after it."""
    if mode == "real":
        rabbitmqctl("stop_app")
        try:
            yield
        finally:
            rabbitmqctl("start_app", timeout=120)
            wait_for_broker(vhost.url)
        return
    vhost.revoke()
    try:
        vhost.close_connections("chaos: broker outage")
        yield
    finally:
        vhost.grant()
        wait_for_broker(vhost.url)


# --- PostgreSQL ----------------------------------------------------------------------------


def _cluster() -> tuple[str, str]:
    versions = sorted(os.listdir("/etc/postgresql"))
    return versions[-1], "main"


def pg_ctlcluster(action: str, *extra: str) -> None:
    version, cluster = _cluster()
    _run(["pg_ctlcluster", "--skip-systemctl-redirect", version, cluster, action, *extra], 120)


def _db_answers(url: str) -> bool:
    with psycopg.connect(url, connect_timeout=2) as conn:
        conn.execute("SELECT 1")
    return True


def wait_for_database(url: str, timeout: float = 90.0) -> float:
    return wait_until("PostgreSQL", lambda: _db_answers(url), timeout)


@contextmanager
def database_outage(mode: str, database: str, url: str) -> Iterator[None]:
    """PostgreSQL (or, scoped, the run's database) is away inside the block."""
    if mode == "real":
        pg_ctlcluster("stop", "-m", "immediate")
        try:
            yield
        finally:
            if not _answers(5432):
                pg_ctlcluster("start")
            wait_for_database(url)
        return
    with psycopg.connect(ADMIN_DB, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
        try:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()",
                (database,),
            )
            yield
        finally:
            admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
    wait_for_database(url)


def write_atomically(path: Path, text: str) -> None:
    """Replace a small file in one step, so a reader never sees half of it."""
    temp = path.with_suffix(".tmp")
    temp.write_text(text, encoding="utf-8")
    temp.replace(path)
