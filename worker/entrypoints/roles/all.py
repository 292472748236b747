"""`refund-worker all`: every role in one process tree, for a laptop.

Runs `migrate`, then starts intake, worker, notify-server, relay and scheduler as
child processes with the same environment, restarts a child that dies, and on
SIGTERM/SIGINT stops them all (SIGTERM, then SIGKILL after the grace period).

With `METRICS_PORT=P` set, the children serve their metrics and health on P, P+1, ...
in the order of `--roles` (one port cannot serve several processes).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import IO

import structlog

from worker.adapters.postgres.pool import migrate
from worker.domain.errors import DatabaseUnavailable
from worker.entrypoints.roles._common import boot, stop_on_signals

log = structlog.get_logger("worker.all")

ROLES = ("intake", "worker", "notify-server", "relay", "scheduler")


@dataclass
class Child:
    role: str
    argv: list[str]
    env: dict[str, str] | None = None
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    started_at: float = field(default=0.0)


def role_command(role: str, extra: Sequence[str] = ()) -> list[str]:
    return [sys.executable, "-m", "worker.entrypoints.cli", role, *extra]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--roles",
        default=",".join(ROLES),
        help=f"comma-separated roles to run (default {','.join(ROLES)})",
    )
    parser.add_argument(
        "--grace", type=float, default=25.0, help="seconds to wait on stop (default 25)"
    )


def start(child: Child, stdout: IO[bytes] | None = None) -> None:
    child.process = subprocess.Popen(child.argv, stdout=stdout, stderr=stdout, env=child.env)
    child.started_at = time.monotonic()
    log.info("child.started", child=child.role, pid=child.process.pid)


def stop_all(children: Sequence[Child], grace: float) -> None:
    for child in children:
        if child.process is not None and child.process.poll() is None:
            child.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for child in children:
        if child.process is None:
            continue
        try:
            child.process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("child.killed", child=child.role, pid=child.process.pid)
            child.process.kill()
            child.process.wait()


def _child_env(metrics_port: int | None, index: int) -> dict[str, str] | None:
    """The environment of the child at `index`: its own metrics port, when one is set."""
    if metrics_port is None:
        return None
    return {**os.environ, "METRICS_PORT": str(metrics_port + index)}


def run(args: argparse.Namespace) -> int:
    settings = boot("all")
    try:
        migrate(settings.database_url, default_partner=settings.merchant().partner)
    except DatabaseUnavailable as exc:
        log.error("db.migrate_failed", error=str(exc))
        return 1
    stop = stop_on_signals()
    roles = [r.strip() for r in args.roles.split(",") if r.strip()]
    unknown = sorted(set(roles) - set(ROLES))
    if unknown:
        log.error("all.unknown_roles", roles=unknown)
        return 2
    children = [
        Child(role, role_command(role), env=_child_env(settings.metrics_port, index))
        for index, role in enumerate(roles)
    ]
    for child in children:
        start(child)
    while not stop.wait(0.5):
        for child in children:
            assert child.process is not None
            code = child.process.poll()
            if code is None:
                continue
            child.restarts += 1
            log.error("child.exited", child=child.role, exit_code=code, restarts=child.restarts)
            if time.monotonic() - child.started_at < 5:
                stop.wait(min(30.0, 2.0 * child.restarts))
            if not stop.is_set():
                start(child)
    stop_all(children, args.grace)
    log.info("role.stopped")
    return 0
