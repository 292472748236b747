"""The container image's Dockerfile (no Docker engine runs in tests).

The Kubernetes manifests are checked in tests/unit/test_kubernetes.py.
"""

from __future__ import annotations

from pathlib import Path

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def test_image_runs_the_console_script_as_a_non_root_user() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["refund-worker"]' in text
    assert "USER 10001" in text
    assert "COPY schemas" in text


def test_the_image_holds_the_worker_without_the_sandbox_or_the_dev_tools() -> None:
    copied = [
        line.split()[1]
        for line in (DEPLOY / "Dockerfile").read_text().splitlines()
        if line.startswith("COPY ") and "--from" not in line
    ]
    assert "worker" in copied
    assert not {"sandbox", "devtools", "tests", "bench", "."} & set(copied), copied
