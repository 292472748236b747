"""The roles without HTTP of their own answer `/healthz`, `/readyz` and `/metrics` on METRICS_PORT.

Each role runs as its Deployment runs it, against the real broker and database, and its
probes (deploy/kubernetes/base) must find it live and ready once its loops turn, with
`/metrics` still serving. An intake that cannot reach its broker is live but not ready.
"""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from devtools.devstack import Stack, StackConfig, free_port

pytestmark = pytest.mark.e2e

ROLES = ("intake", "worker", "relay", "scheduler")


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=3) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def wait_for(url: str, status: int, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            answer = get(url)
            if answer[0] == status:
                return answer[1]
            last = answer
        except OSError as exc:
            last = exc
        time.sleep(0.2)
    raise AssertionError(f"{url} never answered {status}; last: {last!r}")


def test_roles_report_progress_on_their_metrics_port(tmp_path: Path) -> None:
    with Stack(StackConfig(workdir=tmp_path / "stack", roles={})) as stack:
        ports = {role: free_port() for role in ROLES}
        ports["intake-no-broker"] = free_port()
        processes: dict[str, subprocess.Popen[bytes]] = {}
        try:
            for name, port in ports.items():
                env = stack.env() | {"METRICS_PORT": str(port)}
                if name == "intake-no-broker":
                    env["AMQP_URL"] = f"amqp://guest:guest@127.0.0.1:{free_port()}/%2F"
                role = name.split("-")[0]
                with (tmp_path / f"{name}.log").open("wb") as log:
                    processes[name] = subprocess.Popen(
                        [sys.executable, "-m", "worker.entrypoints.cli", role],
                        env=env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
            for role in ROLES:
                base = f"http://127.0.0.1:{ports[role]}"
                assert wait_for(f"{base}/readyz", 200) == "ok\n", role
                assert get(f"{base}/healthz") == (200, "ok\n"), role
                status, metrics = get(f"{base}/metrics")
                assert status == 200, role
                assert "# TYPE refund_intake_messages_total counter" in metrics, role
            base = f"http://127.0.0.1:{ports['intake-no-broker']}"
            body = wait_for(f"{base}/readyz", 503)
            assert body == "starting: intake has not completed an iteration\n"
            time.sleep(2)  # several reconnect attempts later: still alive, still not ready
            assert get(f"{base}/healthz") == (200, "ok\n")
            assert get(f"{base}/readyz")[0] == 503
            for name, process in processes.items():
                assert process.poll() is None, (tmp_path / f"{name}.log").read_text()[-2000:]
        finally:
            for process in processes.values():
                process.terminate()
            for process in processes.values():
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
