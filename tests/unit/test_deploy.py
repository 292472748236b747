"""The deployment files are validated here (no cluster or Docker engine runs in tests)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from worker.config.settings import load_settings
from worker.entrypoints.roles.all import ROLES

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
SECRET_VARIABLES = {"AMQP_URL", "DATABASE_URL", "ALIPAY_MD5_KEY", "ALIPAY_PRIVATE_KEY_FILE"}


def documents() -> list[dict[str, Any]]:
    docs = []
    for path in sorted((DEPLOY / "kubernetes").glob("*.yaml")):
        docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d is not None)
    return docs


def by_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in documents() if d["kind"] == kind}


def containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return list(doc["spec"]["template"]["spec"]["containers"])


def test_every_role_has_a_deployment_running_it() -> None:
    deployments = by_kind("Deployment")
    for role in ROLES:
        doc = deployments[f"refund-worker-{role}"]
        (container,) = containers(doc)
        assert container["args"] == [role]
        assert (
            doc["spec"]["selector"]["matchLabels"] == doc["spec"]["template"]["metadata"]["labels"]
        )
        assert doc["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] >= 30
        assert container["resources"]["limits"]["memory"]
    (job,) = by_kind("Job").values()
    assert containers(job)[0]["args"] == ["migrate"]


def test_notify_server_is_probed_and_exposed() -> None:
    (container,) = containers(by_kind("Deployment")["refund-worker-notify-server"])
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    config = by_kind("ConfigMap")["refund-worker"]["data"]
    assert config["NOTIFY_BIND"].endswith(f":{ports['http']}")
    (service,) = by_kind("Service").values()
    assert service["spec"]["selector"] == {"app": "refund-worker", "role": "notify-server"}


@pytest.mark.parametrize("doc", documents(), ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_secrets_never_appear_as_literal_values(doc: dict[str, Any]) -> None:
    if doc["kind"] == "ConfigMap":
        assert not SECRET_VARIABLES & set(doc["data"])
        return
    if "template" not in doc.get("spec", {}):
        return
    for container in containers(doc):
        for var in container.get("env", []):
            if var["name"] in SECRET_VARIABLES:
                assert "valueFrom" in var and "value" not in var, var["name"]


def test_the_configmap_is_a_valid_configuration() -> None:
    data = by_kind("ConfigMap")["refund-worker"]["data"]
    env = {str(k): str(v) for k, v in data.items()}
    env.update(
        {
            "AMQP_URL": "amqp://user:pw@rabbitmq:5672/%2F",
            "DATABASE_URL": "postgresql://user@postgres:5432/refunds",
            "ALIPAY_MD5_KEY": "0123456789abcdef0123456789abcdef",
        }
    )
    settings = load_settings(env)
    assert settings.gateway_url.startswith("https://")
    assert settings.notify_port == 8080


def test_image_runs_the_console_script_as_a_non_root_user() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["refund-worker"]' in text
    assert "USER 10001" in text
    assert "COPY schemas" in text
    for doc in documents():
        if "template" in doc.get("spec", {}):
            security = doc["spec"]["template"]["spec"]["securityContext"]
            assert security["runAsNonRoot"] is True


def test_the_image_holds_the_worker_without_the_sandbox_or_the_dev_tools() -> None:
    copied = [
        line.split()[1]
        for line in (DEPLOY / "Dockerfile").read_text().splitlines()
        if line.startswith("COPY ") and "--from" not in line
    ]
    assert "worker" in copied
    assert not {"sandbox", "devtools", "tests", "bench", "."} & set(copied), copied
