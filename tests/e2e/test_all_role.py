"""`refund-worker all` runs every role for a laptop and stops cleanly on SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from devtools.devstack import Stack, StackConfig
from tests.support.events import refund_request, trade

pytestmark = pytest.mark.e2e


def test_all_processes_refunds_and_stops_on_sigterm(tmp_path: Path) -> None:
    with Stack(StackConfig(workdir=tmp_path, roles={}, batch_max_wait=0.2)) as stack:
        log = (tmp_path / "all.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "worker.entrypoints.cli", "all"],
            env=stack.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            requests = [refund_request(f"all-{i}", trade(700 + i), "2.00") for i in range(20)]
            stack.publish(requests)
            done = stack.collect({r["refund_id"] for r in requests}, timeout=90)
            assert len(done) == 20
            assert {events[0]["status"] for events in done.values()} == {"succeeded"}
        finally:
            process.send_signal(signal.SIGTERM)
            code = process.wait(60)
            log.close()
        assert code == 0
        text = (tmp_path / "all.log").read_text()
        assert '"event": "role.stopped"' in text
        # Every child stopped on its own (no SIGKILL after the grace period).
        assert "child.killed" not in text
