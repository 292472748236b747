"""deploy/docker-compose.yml is validated here (no Docker engine runs in tests).

Against the Compose specification's JSON schema (vendored in deploy/schemas, see its
README), then for what the schema cannot know: every role is a service running a real
`refund-worker` subcommand, waits for a healthy broker and database and a migrated
schema, has a health check, and gets settings the worker accepts, with the MD5 key as a
compose secret and never as a value in the file.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from worker.config.settings import load_settings
from worker.entrypoints.cli import COMMANDS
from worker.entrypoints.roles.all import ROLES

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
COMPOSE = DEPLOY / "docker-compose.yml"
SCHEMA = DEPLOY / "schemas" / "compose-spec.json"
INFRASTRUCTURE = {"rabbitmq", "postgres"}
# ${NAME}, ${NAME:-default}, ${NAME-default}; `$$` is a literal dollar.
INTERPOLATION = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::?-(?P<default>[^}]*))?\}")


def load_compose(text: str | None = None) -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE.read_text() if text is None else text)
    assert isinstance(loaded, dict)
    return loaded


def schema_errors(document: dict[str, Any]) -> list[str]:
    schema = json.loads(SCHEMA.read_text())
    validator = jsonschema.Draft7Validator(schema)
    return [f"{e.json_path}: {e.message}" for e in validator.iter_errors(document)]


def interpolate(value: str) -> str:
    """What Compose substitutes with no variable set: the default, else empty."""
    return INTERPOLATION.sub(lambda m: m.group("default") or "", value)


def services() -> dict[str, dict[str, Any]]:
    found = load_compose()["services"]
    assert isinstance(found, dict)
    return found


def command_of(service: dict[str, Any]) -> list[str]:
    command = service.get("command")
    assert isinstance(command, list), "commands are written as lists, never shell strings"
    return [str(part) for part in command]


def test_the_schema_is_the_compose_specification() -> None:
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    assert schema["title"] == "Compose Specification"
    assert {"services", "secrets", "volumes"} <= set(schema["properties"])


def test_the_compose_file_is_valid_against_the_specification() -> None:
    assert schema_errors(load_compose()) == []


@pytest.mark.parametrize(
    ("breakage", "where"),
    [
        (
            lambda d: d["services"]["worker"]["depends_on"]["migrate"].update(
                condition="service_finished"
            ),
            "condition",
        ),
        (lambda d: d["services"]["intake"].update(restart_policy="always"), "restart_policy"),
        (lambda d: d["services"]["relay"]["healthcheck"].update(interval=10), "interval"),
        (lambda d: d.update(secrets={"alipay_md5_key": {"path": "x"}}), "path"),
    ],
    ids=["unknown-condition", "unknown-key", "wrong-type", "bad-secret"],
)
def test_a_broken_compose_file_fails_the_schema(breakage: Any, where: str) -> None:
    broken = copy.deepcopy(load_compose())
    breakage(broken)
    errors = schema_errors(broken)
    assert errors and any(where in error for error in errors), errors


def test_a_broken_file_on_disk_fails_too() -> None:
    text = COMPOSE.read_text().replace(
        "condition: service_completed_successfully", "condition: service_done", 1
    )
    assert text != COMPOSE.read_text()
    assert schema_errors(load_compose(text)) != []


def test_every_role_runs_as_its_own_service() -> None:
    running = {command_of(s)[0]: name for name, s in services().items() if "command" in s}
    for role in (*ROLES, "migrate", "sandbox"):
        assert role in running, f"no service runs `refund-worker {role}`"
    assert "all" not in running, "the compose file runs every role as its own container"


def test_every_command_is_a_real_refund_worker_subcommand() -> None:
    for name, service in services().items():
        if name in INFRASTRUCTURE:
            assert "command" not in service
            continue
        assert command_of(service)[0] in COMMANDS, name


def test_the_role_images_are_built_from_the_project_dockerfile() -> None:
    for name, service in services().items():
        if name in INFRASTRUCTURE or name == "sandbox":
            continue
        assert service["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}, name
        assert (DEPLOY.parent / service["build"]["dockerfile"]).is_file()


def test_roles_wait_for_a_healthy_broker_and_database_and_a_migrated_schema() -> None:
    found = services()
    for role in ROLES:
        depends = {command_of(s)[0]: s for s in found.values() if "command" in s}[role][
            "depends_on"
        ]
        assert depends["rabbitmq"] == {"condition": "service_healthy"}, role
        assert depends["postgres"] == {"condition": "service_healthy"}, role
        assert depends["migrate"] == {"condition": "service_completed_successfully"}, role
    assert found["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert found["migrate"]["restart"] == "no"
    assert found["worker"]["depends_on"]["sandbox"] == {"condition": "service_healthy"}


def test_every_long_running_service_has_a_health_check() -> None:
    for name, service in services().items():
        if name == "migrate":
            continue
        check = service.get("healthcheck")
        assert check and check["test"][0] in ("CMD", "CMD-SHELL"), name
        if "command" in service:
            role = command_of(service)[0]
            probe = " ".join(check["test"])
            if role in ("intake", "worker", "relay", "scheduler"):
                env = service["environment"]
                assert f":{env['METRICS_PORT']}/healthz" in probe, name
            elif role == "notify-server":
                assert ":8080/healthz" in probe
            elif role == "console":
                assert ":8091/healthz" in probe
            else:
                assert "/_sandbox/health" in probe


def test_the_intake_queue_is_quorum_on_the_broker() -> None:
    found = services()
    assert found["rabbitmq"]["image"].split(":")[0] == "rabbitmq"
    major, minor = (
        int(p) for p in found["rabbitmq"]["image"].split(":")[1].split("-")[0].split(".")[:2]
    )
    assert (major, minor) >= (3, 8), "quorum queues and delivery limits need RabbitMQ 3.8+"
    assert found["intake"]["environment"]["INTAKE_QUEUE_TYPE"] == "quorum"


def test_the_md5_key_is_a_compose_secret_never_a_value() -> None:
    document = load_compose()
    secret = document["secrets"]["alipay_md5_key"]
    assert set(secret) == {"file"}
    assert not (DEPLOY / secret["file"]).exists() or not _tracked(DEPLOY / secret["file"])
    for name, service in document["services"].items():
        env = service.get("environment", {})
        assert "ALIPAY_MD5_KEY" not in env, name
        if "ALIPAY_MD5_KEY_FILE" in env:
            assert env["ALIPAY_MD5_KEY_FILE"] == "/run/secrets/alipay_md5_key"
            assert "alipay_md5_key" in service["secrets"], name
    example = (DEPLOY / "compose.env.example").read_text()
    assert not re.search(r"^\s*ALIPAY_MD5_KEY", example, re.MULTILINE)


def _tracked(path: Path) -> bool:
    result = subprocess.run(
        ["git", "ls-files", "--error-unmatch", str(path)],
        cwd=DEPLOY.parent,
        capture_output=True,
        check=False,
    )
    return result.returncode == 0


def test_every_role_gets_settings_the_worker_accepts(tmp_path: Path) -> None:
    key = tmp_path / "alipay_md5_key"
    key.write_text("0123456789abcdef0123456789abcdef\n")
    console_key = tmp_path / "console_secret_key"
    console_key.write_text("ef" * 32 + "\n")
    for name, service in services().items():
        if name in INFRASTRUCTURE or name == "sandbox":
            continue
        env = {k: interpolate(str(v)) for k, v in service["environment"].items()}
        env["ALIPAY_MD5_KEY_FILE"] = str(key)
        if "CONSOLE_SECRET_KEY_FILE" in env:
            env["CONSOLE_SECRET_KEY_FILE"] = str(console_key)
        settings = load_settings(env)
        assert settings.gateway_url == "http://sandbox:8090/gateway.do", name
        assert settings.notify_url.startswith("http://notify-server:8080/"), name
        assert settings.metrics_port == 9100, name


def test_the_console_reads_its_session_key_from_a_compose_secret(tmp_path: Path) -> None:
    document = load_compose()
    console = document["services"]["console"]
    assert command_of(console)[0] == "console"
    env = {k: interpolate(str(v)) for k, v in console["environment"].items()}
    assert env["CONSOLE_SECRET_KEY_FILE"] == "/run/secrets/console_secret_key"
    assert "console_secret_key" in console["secrets"]
    assert set(document["secrets"]["console_secret_key"]) == {"file"}
    assert console["ports"] == ["127.0.0.1:8091:8091"]
    (tmp_path / "md5").write_text("0123456789abcdef0123456789abcdef\n")
    (tmp_path / "key").write_text("cd" * 32 + "\n")
    env |= {
        "ALIPAY_MD5_KEY_FILE": str(tmp_path / "md5"),
        "CONSOLE_SECRET_KEY_FILE": str(tmp_path / "key"),
    }
    settings = load_settings(env)
    assert settings.console_bind == "0.0.0.0:8091" and settings.console_secret_key is not None
    assert not settings.console_cookies_secure
    for depends in ("rabbitmq", "postgres", "migrate"):
        assert depends in console["depends_on"]


def test_the_env_example_names_only_variables_the_file_uses() -> None:
    text = COMPOSE.read_text()
    used = {m.group("name") for m in INTERPOLATION.finditer(text)}
    for line in (DEPLOY / "compose.env.example").read_text().splitlines():
        line = line.strip().lstrip("#").strip()
        if "=" in line and re.match(r"^[A-Z_][A-Z0-9_]*=", line):
            assert line.split("=", 1)[0] in used, line
