"""Every role, run as its Deployment runs it, stops on SIGTERM within its pod's grace period.

The command and `terminationGracePeriodSeconds` come from the rendered production overlay,
so a role that grows a slower shutdown, or a manifest that shortens the grace, fails here.
Each role is stopped while it holds work, as a rolling upgrade would find it.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from devtools.devstack import Stack, StackConfig
from tests.support.events import refund_request, trade
from tests.support.kustomize import render

pytestmark = pytest.mark.e2e

OVERLAY = Path(__file__).resolve().parents[2] / "deploy/kubernetes/overlays/production"
ROLES = ("intake", "worker", "notify-server", "relay", "scheduler")


def _deployment(role: str) -> tuple[list[str], float]:
    for obj in render(OVERLAY):
        if obj["kind"] != "Deployment":
            continue
        spec: dict[str, Any] = obj["spec"]["template"]["spec"]
        (container,) = spec["containers"]
        command = list(container["command"])
        if command[:2] == ["refund-worker", role]:
            return command[1:], float(spec["terminationGracePeriodSeconds"])
    raise AssertionError(f"no Deployment runs refund-worker {role}")


def _wait_healthy(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"{url} never answered")


def _wait_for_line(path: Path, text: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in path.read_text(errors="replace"):
            return
        time.sleep(0.1)
    raise AssertionError(f"{path.name} never logged {text}")


@pytest.mark.parametrize("role", ROLES)
def test_role_stops_on_sigterm_within_its_grace_period(tmp_path: Path, role: str) -> None:
    args, grace = _deployment(role)
    # The rest of the pipeline runs beside it, so the role has real work in hand.
    others = {r: 1 for r in ROLES if r != role}
    with Stack(StackConfig(workdir=tmp_path / "stack", roles=others, batch_max_wait=0.2)) as stack:
        log_path = tmp_path / f"{role}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "worker.entrypoints.cli", *args],
                env=stack.env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            try:
                requests = [
                    refund_request(f"stop-{role}-{i}", trade(800 + i), "1.00") for i in range(40)
                ]
                stack.publish(requests)
                if role == "notify-server":
                    _wait_healthy(f"http://127.0.0.1:{stack.notify_port}/healthz")
                else:
                    _wait_for_line(log_path, '"event": "role.starting"')
                    time.sleep(1.5)  # its signal handlers are in, and it takes some work
                started = time.monotonic()
                process.send_signal(signal.SIGTERM)
                code = process.wait(grace + 5)
                stopped_in = time.monotonic() - started
            finally:
                if process.poll() is None:
                    process.kill()
                    process.wait()
        assert code == 0, log_path.read_text()[-2000:]
        assert stopped_in < grace, f"{role} took {stopped_in:.1f} s, grace is {grace:.0f} s"
        if role != "notify-server":  # gunicorn's master logs its own shutdown
            assert '"event": "role.stopped"' in log_path.read_text()
