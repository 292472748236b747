"""deploy/kubernetes/: every overlay rendered, checked against the schemas and the worker itself.

No cluster: overlays are rendered by tests.support.kustomize (the kustomize subset the
layout uses); when kubectl is installed its `kubectl kustomize` must render the same objects.
Built-in kinds are validated against the Kubernetes JSON schemas of K8S_VERSION shipped by
kubernetes-validate (strict: an unknown field is an error); the KEDA and prometheus-operator
kinds against the CRD schemas vendored in deploy/kubernetes/schemas/, made strict the same way.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import json
import shutil
import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.support.kustomize import KustomizeError, render
from worker.adapters.dramatiq.jobs import job_queues
from worker.adapters.rabbitmq.topology import Topology
from worker.config import values
from worker.config.settings import load_settings
from worker.entrypoints.cli import COMMANDS
from worker.entrypoints.roles.all import ROLES

Object = dict[str, Any]

KUBERNETES = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"
OVERLAYS = ("production", "sandbox")
NAMESPACES = {"production": "refunds", "sandbox": "refunds-sandbox"}
K8S_VERSION = "1.32"
KUBECTL = shutil.which("kubectl")
CRD_SCHEMAS = {
    ("keda.sh/v1alpha1", "ScaledObject"): "keda/scaledobject-keda-v1alpha1.json",
    ("keda.sh/v1alpha1", "TriggerAuthentication"): "keda/triggerauthentication-keda-v1alpha1.json",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): (
        "prometheus-operator/servicemonitor-monitoring-v1.json"
    ),
}
# Peak RSS per role, README "Performance" (5): requests must cover it, limits double it.
PEAK_MB = {"intake": 77, "worker": 94, "notify-server": 99, "relay": 65, "scheduler": 77}
SECRET_VARIABLES = {"AMQP_URL", "DATABASE_URL", "ALIPAY_MD5_KEY"}
ALLOWED_EGRESS_PORTS = {53, 443, 5432, 5672}
PRODUCTION_GATEWAY = "https://mapi.alipay.com/gateway.do"
FOLLOW_THE_LOAD = {"intake": "ScaledObject", "worker": "ScaledObject", "notify-server": "HPA"}


@cache
def _rendered(overlay: str) -> tuple[Object, ...]:
    return tuple(render(KUBERNETES / "overlays" / overlay))


def rendered(overlay: str) -> list[Object]:
    return copy.deepcopy(list(_rendered(overlay)))


def by_kind(objects: list[Object], kind: str) -> dict[str, Object]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def role_of(obj: Object) -> str:
    return str(obj["metadata"]["labels"]["app.kubernetes.io/component"])


def workloads(objects: list[Object]) -> Iterator[Object]:
    yield from (o for o in objects if o["kind"] in ("Deployment", "Job"))


def pod_spec(obj: Object) -> Object:
    return dict(obj["spec"]["template"]["spec"])


def mebibytes(quantity: str) -> float:
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024}
    for suffix, factor in units.items():
        if quantity.endswith(suffix):
            return float(quantity[: -len(suffix)]) * factor
    return float(quantity) / 2**20


# --- schemas ---------------------------------------------------------------------------


def strict(schema: Any) -> Any:
    """A CRD schema that refuses unknown fields (the API server would silently prune them)."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict(v) for k, v in schema.items()}
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


@cache
def crd_validator(api_version: str, kind: str) -> jsonschema.Draft7Validator:
    text = (KUBERNETES / "schemas" / CRD_SCHEMAS[(api_version, kind)]).read_text()
    return jsonschema.Draft7Validator(strict(json.loads(text)))


def schema_errors(obj: Object) -> list[str]:
    """What the schema of the object's kind finds wrong with it (unknown kinds are an error)."""
    name = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
    key = (obj.get("apiVersion", ""), obj.get("kind", ""))
    if key in CRD_SCHEMAS:
        return [
            f"{name}: {'.'.join(map(str, e.absolute_path))}: {e.message}"
            for e in crd_validator(*key).iter_errors(obj)
        ]
    try:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return [f"{name}: {'.'.join(map(str, exc.path))}: {exc.message}"]
    except kubernetes_validate.SchemaNotFoundError:
        return [f"{name}: no schema for {key[0]} {key[1]} in Kubernetes {K8S_VERSION}"]
    return []


# --- the rules every role follows ------------------------------------------------------


def role_options(command: list[str]) -> argparse.Namespace:
    """The role's own argument parser applied to the container's command (so it must parse)."""
    module = importlib.import_module(COMMANDS[command[1]][0])
    parser = argparse.ArgumentParser(prog=f"refund-worker {command[1]}", exit_on_error=False)
    module.add_arguments(parser)
    return parser.parse_args(command[2:])


def shutdown_seconds(command: list[str]) -> float:
    """How long the role may take to stop after SIGTERM, from its own options."""
    options = role_options(command)
    for name in ("shutdown_timeout", "graceful_timeout"):
        if hasattr(options, name):
            return float(getattr(options, name))
    return 25.0  # intake, relay, scheduler: a micro-batch or one sweep, well under this


def container_problems(container: Object, where: str) -> list[str]:
    problems = []
    resources = container.get("resources", {})
    for part in ("requests", "limits"):
        for resource in ("cpu", "memory"):
            if resource not in resources.get(part, {}):
                problems.append(f"{where}: no {part}.{resource}")
    security = container.get("securityContext", {})
    if security.get("readOnlyRootFilesystem") is not True:
        problems.append(f"{where}: root filesystem not read-only")
    if security.get("allowPrivilegeEscalation") is not False:
        problems.append(f"{where}: privilege escalation not disabled")
    if "ALL" not in security.get("capabilities", {}).get("drop", []):
        problems.append(f"{where}: capabilities not dropped")
    return problems


def workload_problems(obj: Object, objects: list[Object]) -> list[str]:
    """Every rule a role's Deployment (or the migrate Job) breaks; empty when it is fine."""
    name = f"{obj['kind']}/{obj['metadata']['name']}"
    spec = pod_spec(obj)
    problems = []
    security = spec.get("securityContext", {})
    if security.get("runAsNonRoot") is not True or security.get("runAsUser", 0) == 0:
        problems.append(f"{name}: pod may run as root")
    for container in spec.get("initContainers", []) + spec["containers"]:
        problems += container_problems(container, f"{name}/{container['name']}")
    main = spec["containers"][0]
    command = main.get("command", [])
    if command[:1] != ["refund-worker"] or len(command) < 2 or command[1] not in COMMANDS:
        problems.append(f"{name}: {command} is not a refund-worker subcommand")
        return problems
    try:
        grace = shutdown_seconds(command)
    except argparse.ArgumentError as exc:
        return [*problems, f"{name}: {command}: {exc}"]
    if obj["kind"] == "Job":
        return problems
    if spec.get("terminationGracePeriodSeconds", 30) <= grace:
        problems.append(f"{name}: grace period not longer than the role's {grace:g} s shutdown")
    for probe in ("readinessProbe", "livenessProbe"):
        if probe not in main:
            problems.append(f"{name}: no {probe}")
    labels = obj["spec"]["template"]["metadata"]["labels"]
    budgets = [
        p
        for p in by_kind(objects, "PodDisruptionBudget").values()
        if p["spec"]["selector"]["matchLabels"].items() <= labels.items()
    ]
    if len(budgets) != 1:
        problems.append(f"{name}: {len(budgets)} PodDisruptionBudgets select its pods")
    return problems


# --- tests -----------------------------------------------------------------------------


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def subset_fixture(tmp_path: Path) -> Path:
    """A base and an overlay using every part of the renderer's subset; the overlay's path."""
    write(
        tmp_path / "base/kustomization.yaml",
        "resources: [app.yaml]\nimages: [{name: app, newName: reg/app, newTag: '1'}]\n",
    )
    write(
        tmp_path / "base/app.yaml",
        """
apiVersion: apps/v1
kind: Deployment
metadata: {name: app, labels: {a: b}}
spec:
  replicas: 2
  template:
    spec:
      initContainers: [{name: init, image: app}]
      containers:
        - name: app
          image: app
          env: [{name: A, value: "1"}, {name: B, value: "2"}]
          args: [x, y]
        - {name: side, image: other:3}
""",
    )
    write(
        tmp_path / "overlay/kustomization.yaml",
        """
resources: [../base]
namespace: ns
labels: [{pairs: {env: test}}]
patches: [{path: patch.yaml}]
images: [{name: reg/app, newTag: '2'}]
""",
    )
    write(
        tmp_path / "overlay/patch.yaml",
        """
apiVersion: apps/v1
kind: Deployment
metadata: {name: app}
spec:
  replicas: null
  template:
    spec:
      containers:
        - name: app
          env: [{name: B, value: "3"}, {name: C, value: "4"}]
          args: [z]
""",
    )
    return tmp_path / "overlay"


@pytest.mark.skipif(
    KUBECTL is None,
    reason="kubectl is not installed: the renderer is not compared with `kubectl kustomize` "
    "(every other check of the overlays still runs on the renderer's output)",
)
@pytest.mark.parametrize("overlay", [*OVERLAYS, "base", "subset-fixture"])
def test_the_renderer_matches_kubectl_kustomize(overlay: str, tmp_path: Path) -> None:
    assert KUBECTL is not None
    if overlay == "subset-fixture":
        directory = subset_fixture(tmp_path)
    else:
        directory = KUBERNETES / ("base" if overlay == "base" else f"overlays/{overlay}")
    out = subprocess.run(
        [KUBECTL, "kustomize", str(directory)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    theirs = {(o["kind"], o["metadata"]["name"]): o for o in yaml.safe_load_all(out) if o}
    ours = {(o["kind"], o["metadata"]["name"]): o for o in render(directory)}
    assert sorted(ours) == sorted(theirs)
    for key, obj in ours.items():
        assert obj == theirs[key], key


def test_the_renderer_applies_the_subset_and_refuses_the_rest(tmp_path: Path) -> None:
    subset_fixture(tmp_path)
    (app,) = render(tmp_path / "overlay")
    assert app["metadata"] == {
        "name": "app",
        "namespace": "ns",
        "labels": {"a": "b", "env": "test"},
    }
    assert "replicas" not in app["spec"]
    spec = app["spec"]["template"]["spec"]
    assert spec["initContainers"][0]["image"] == "reg/app:2"
    main, side = spec["containers"]
    assert main["image"] == "reg/app:2" and side["image"] == "other:3"
    assert main["env"] == [  # kustomize's order: the patch's items, then the others
        {"name": "B", "value": "3"},
        {"name": "C", "value": "4"},
        {"name": "A", "value": "1"},
    ]
    assert main["args"] == ["z"]  # a list without a merge key is replaced

    write(tmp_path / "overlay/kustomization.yaml", "resources: [../base]\nreplicas: []\n")
    with pytest.raises(KustomizeError, match="unsupported fields"):
        render(tmp_path / "overlay")
    write(tmp_path / "overlay/kustomization.yaml", "resources: [../base, ../base/app.yaml]\n")
    with pytest.raises(KustomizeError, match="defined twice"):
        render(tmp_path / "overlay")
    write(
        tmp_path / "overlay/kustomization.yaml",
        "resources: [../base]\n"
        "patches: [{path: patch.yaml, target: {kind: Deployment, name: x}}]\n",
    )
    with pytest.raises(KustomizeError, match="no single Deployment/x"):
        render(tmp_path / "overlay")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_matches_its_schema(overlay: str) -> None:
    objects = rendered(overlay)
    assert {o["kind"] for o in objects} >= {
        "ConfigMap", "Deployment", "Job", "Service", "PodDisruptionBudget", "NetworkPolicy",
        "ServiceMonitor", "ScaledObject", "TriggerAuthentication", "HorizontalPodAutoscaler",
    }  # fmt: skip
    problems = [p for obj in objects for p in schema_errors(obj)]
    assert not problems, "\n".join(problems)
    assert {o["metadata"]["namespace"] for o in objects} == {NAMESPACES[overlay]}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_role_follows_the_rules(overlay: str) -> None:
    objects = rendered(overlay)
    problems = [p for obj in workloads(objects) for p in workload_problems(obj, objects)]
    assert not problems, "\n".join(problems)

    deployments = {role_of(d): d for d in by_kind(objects, "Deployment").values()}
    assert set(ROLES) <= set(deployments)
    for role in ROLES:
        spec = pod_spec(deployments[role])
        main = spec["containers"][0]
        assert main["command"][:2] == ["refund-worker", role]
        # one image for every role, the init container included
        images = {c["image"] for c in spec["containers"] + spec["initContainers"]}
        assert images == {"registry.example.com/alipay-refund-worker:0.1.0"}
        assert [c["name"] for c in spec["initContainers"]] == ["wait-for-schema"]
        assert "migration_files" in spec["initContainers"][0]["command"][-1]
        memory = main["resources"]
        assert mebibytes(memory["requests"]["memory"]) >= PEAK_MB[role]
        assert mebibytes(memory["limits"]["memory"]) >= 2 * PEAK_MB[role]
    (job,) = by_kind(objects, "Job").values()
    assert pod_spec(job)["containers"][0]["command"] == ["refund-worker", "migrate"]
    # the pods run as the image's own user
    (user,) = [
        line.split()[1]
        for line in (KUBERNETES.parent / "Dockerfile").read_text().splitlines()
        if line.startswith("USER ")
    ]
    for workload in workloads(objects):
        assert pod_spec(workload)["securityContext"]["runAsUser"] == int(user)
    if overlay == "sandbox":
        sandbox = pod_spec(deployments["sandbox"])["containers"][0]
        assert sandbox["command"][:2] == ["refund-worker", "sandbox"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_probes_check_what_each_role_serves(overlay: str) -> None:
    objects = rendered(overlay)
    config = by_kind(objects, "ConfigMap")["refund-worker"]["data"]
    for deployment in by_kind(objects, "Deployment").values():
        role = role_of(deployment)
        if role == "sandbox":
            continue
        main = pod_spec(deployment)["containers"][0]
        ports = {p["name"]: p["containerPort"] for p in main["ports"]}
        if role == "notify-server":
            assert main["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
            assert main["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
            assert config["NOTIFY_BIND"] == f"0.0.0.0:{ports['http']}"
            continue
        if role == "console":
            env = {v["name"]: v.get("value") for v in main["env"]}
            assert ports == {"http": values.split_bind(env["CONSOLE_BIND"])[1]}
            assert main["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
            assert main["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
            continue
        # The other roles serve their loops' heartbeats beside /metrics on METRICS_PORT
        # (worker.observability.health): no exec probe, no dependency check in liveness.
        assert ports == {"metrics": int(config["METRICS_PORT"])}
        assert main["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
        assert main["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
        compile(pod_spec(deployment)["initContainers"][0]["command"][2], "wait", "exec")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_configmap_is_a_valid_configuration(overlay: str, tmp_path: Path) -> None:
    objects = rendered(overlay)
    data = by_kind(objects, "ConfigMap")["refund-worker"]["data"]
    assert not SECRET_VARIABLES & set(data)
    key_file = data["ALIPAY_MD5_KEY_FILE"]
    key = tmp_path / "md5_key"
    key.write_text("0123456789abcdef0123456789abcdef\n")
    env = {str(k): str(v) for k, v in data.items()}
    env.update(
        {
            "AMQP_URL": "amqp://user:pw@rabbitmq:5672/%2F",
            "DATABASE_URL": "postgresql://user@postgres:5432/refunds",
            "ALIPAY_MD5_KEY_FILE": str(key),
        }
    )
    settings = load_settings(env)
    assert settings.notify_port == 8080
    gateway = urlsplit(data["ALIPAY_GATEWAY_URL"])
    if overlay == "production":
        assert data["ALIPAY_GATEWAY_URL"] == PRODUCTION_GATEWAY
    else:
        service = by_kind(objects, "Service")[gateway.hostname or ""]
        assert service["spec"]["ports"][0]["port"] == gateway.port
        assert role_of(service) == "sandbox"
        notify = by_kind(objects, "Service")[urlsplit(data["ALIPAY_NOTIFY_URL"]).hostname or ""]
        assert role_of(notify) == "notify-server"

    # the key file lies in the secret volume every role mounts
    for deployment in workloads(objects):
        spec = pod_spec(deployment)
        volumes = {v["name"]: v for v in spec["volumes"]}
        mounts = {m["mountPath"]: m for m in spec["containers"][0]["volumeMounts"]}
        mount = mounts[str(Path(key_file).parent)]
        assert volumes[mount["name"]]["secret"]["secretName"] == "refund-worker-alipay"
        assert mount["readOnly"] is True
        for container in spec["containers"] + spec.get("initContainers", []):
            for var in container.get("env", []):
                if var["name"] in SECRET_VARIABLES:
                    assert set(var) == {"name", "valueFrom"}, var


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_only_the_notify_server_accepts_traffic_and_egress_is_narrow(overlay: str) -> None:
    objects = rendered(overlay)
    policies = by_kind(objects, "NetworkPolicy")
    base = policies["refund-worker"]
    assert base["spec"]["podSelector"] == {
        "matchLabels": {"app.kubernetes.io/name": "refund-worker"}
    }
    assert base["spec"]["policyTypes"] == ["Ingress", "Egress"]
    # the only ingress to every pod: Prometheus from the monitoring namespace, metrics port
    (scrape,) = base["spec"]["ingress"]
    assert scrape["ports"] == [{"protocol": "TCP", "port": "metrics"}]
    open_ingress = [
        p for p in policies.values() for rule in p["spec"].get("ingress", []) if "from" not in rule
    ]
    assert [p["metadata"]["name"] for p in open_ingress] == ["refund-worker-notify-server"]
    assert (
        open_ingress[0]["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"]
        == "notify-server"
    )
    allowed = ALLOWED_EGRESS_PORTS | ({8080, 8090} if overlay == "sandbox" else set())
    for policy in policies.values():
        for rule in policy["spec"].get("egress", []):
            assert {p["port"] for p in rule["ports"]} <= allowed, policy["metadata"]["name"]
    (https,) = [r for r in base["spec"]["egress"] if r["ports"][0]["port"] == 443]
    assert https["to"][0]["ipBlock"]["cidr"] == "0.0.0.0/0"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_autoscaling_follows_the_queues_the_roles_consume(overlay: str) -> None:
    objects = rendered(overlay)
    exchange = by_kind(objects, "ConfigMap")["refund-worker"]["data"]["REFUND_EXCHANGE"]
    deployments = by_kind(objects, "Deployment")
    scaled = {
        s["spec"]["scaleTargetRef"]["name"]: s for s in by_kind(objects, "ScaledObject").values()
    }
    queues = {
        name: [t["metadata"]["queueName"] for t in s["spec"]["triggers"]]
        for name, s in scaled.items()
    }
    assert queues == {
        "refund-worker-intake": [Topology.for_exchange(exchange).intake_queue],
        "refund-worker-worker": list(job_queues(exchange)),
    }
    (auth,) = by_kind(objects, "TriggerAuthentication").values()
    assert auth["spec"]["secretTargetRef"] == [
        {"parameter": "host", "name": "refund-worker", "key": "AMQP_URL"}
    ]
    for obj in scaled.values():
        spec = obj["spec"]
        assert spec["minReplicaCount"] >= 1
        assert spec["maxReplicaCount"] >= spec["minReplicaCount"]
        for trigger in spec["triggers"]:
            assert trigger["type"] == "rabbitmq"
            assert trigger["authenticationRef"] == {"name": auth["metadata"]["name"]}
    (hpa,) = by_kind(objects, "HorizontalPodAutoscaler").values()
    assert hpa["spec"]["scaleTargetRef"]["name"] == "refund-worker-notify-server"
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    targets = set(scaled) | {hpa["spec"]["scaleTargetRef"]["name"]}
    assert targets == {f"refund-worker-{role}" for role in FOLLOW_THE_LOAD}
    for name, deployment in deployments.items():
        # an autoscaled Deployment leaves replicas to its scaler; the others fix them
        assert ("replicas" in deployment["spec"]) == (name not in targets), name
    if overlay == "production":
        assert all(s["spec"]["minReplicaCount"] >= 2 for s in scaled.values())
        assert hpa["spec"]["minReplicas"] >= 3
        assert all(
            deployments[f"refund-worker-{r}"]["spec"]["replicas"] == 2
            for r in ("relay", "scheduler")
        )


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_prometheus_scrapes_every_role(overlay: str) -> None:
    objects = rendered(overlay)
    (monitor,) = by_kind(objects, "ServiceMonitor").values()
    selector = monitor["spec"]["selector"]["matchLabels"]
    services = [
        s for s in by_kind(objects, "Service").values()
        if selector.items() <= s["metadata"]["labels"].items()
    ]  # fmt: skip
    scraped: set[str] = set()
    for endpoint in monitor["spec"]["endpoints"]:
        assert endpoint["path"] == "/metrics"
        ports = [
            (service["spec"]["selector"], port["targetPort"])
            for service in services
            for port in service["spec"]["ports"]
            if port["name"] == endpoint["port"]
        ]
        for deployment in by_kind(objects, "Deployment").values():
            labels = deployment["spec"]["template"]["metadata"]["labels"]
            names = {p["name"] for p in pod_spec(deployment)["containers"][0]["ports"]}
            if any(sel.items() <= labels.items() and target in names for sel, target in ports):
                scraped.add(role_of(deployment))
    assert scraped == set(ROLES)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_console_signs_sessions_with_a_key_from_its_secret(
    overlay: str, tmp_path: Path
) -> None:
    objects = rendered(overlay)
    deployment = by_kind(objects, "Deployment")["refund-worker-console"]
    spec = pod_spec(deployment)
    main = spec["containers"][0]
    assert main["command"][:2] == ["refund-worker", "console"]
    env = {v["name"]: v.get("value") for v in main["env"]}
    key_file = Path(str(env["CONSOLE_SECRET_KEY_FILE"]))
    mounts = {m["mountPath"]: m for m in main["volumeMounts"]}
    mount = mounts[str(key_file.parent)]
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes[mount["name"]]["secret"]["secretName"] == "refund-worker-console"
    assert mount["readOnly"] is True
    assert env["CONSOLE_SECURE_COOKIES"] == "true"
    # The container's settings are valid, the key read from a file like the mounted one.
    data = by_kind(objects, "ConfigMap")["refund-worker"]["data"]
    (tmp_path / "md5_key").write_text("0123456789abcdef0123456789abcdef\n")
    (tmp_path / "secret_key").write_text("ab" * 32 + "\n")
    settings = load_settings(
        {str(k): str(v) for k, v in data.items()}
        | {k: str(v) for k, v in env.items() if v is not None}
        | {
            "ALIPAY_MD5_KEY_FILE": str(tmp_path / "md5_key"),
            "CONSOLE_SECRET_KEY_FILE": str(tmp_path / "secret_key"),
        }
    )
    assert settings.console_secret_key is not None and settings.console_cookies_secure
    assert not settings.console_on_loopback
    # Only the ingress controller's namespace may reach it, and Prometheus does not scrape it.
    policy = by_kind(objects, "NetworkPolicy")["refund-worker-console"]
    (rule,) = policy["spec"]["ingress"]
    assert rule["from"] and rule["ports"] == [{"protocol": "TCP", "port": "http"}]
    service = by_kind(objects, "Service")["refund-worker-console"]
    assert [p["name"] for p in service["spec"]["ports"]] == ["web"]


def test_a_broken_manifest_is_reported() -> None:
    objects = rendered("production")
    deployment = by_kind(objects, "Deployment")["refund-worker-intake"]
    container = pod_spec(deployment)["containers"][0]

    no_probe = copy.deepcopy(deployment)
    del no_probe["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
    assert not schema_errors(no_probe)
    assert workload_problems(no_probe, objects) == [
        "Deployment/refund-worker-intake: no readinessProbe"
    ]

    misspelled = copy.deepcopy(deployment)
    misspelled["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = container.pop(
        "readinessProbe"
    )
    (error,) = schema_errors(misspelled)
    assert "readinesProbe" in error

    root = copy.deepcopy(deployment)
    root["spec"]["template"]["spec"]["securityContext"]["runAsUser"] = 0
    root["spec"]["template"]["spec"]["containers"][0]["command"] = ["refund-worker", "intak"]
    assert workload_problems(root, objects) == [
        "Deployment/refund-worker-intake: pod may run as root",
        "Deployment/refund-worker-intake: ['refund-worker', 'intak'] is not a refund-worker "
        "subcommand",
    ]

    scaled = copy.deepcopy(by_kind(objects, "ScaledObject")["refund-worker-intake"])
    scaled["spec"]["minReplicas"] = scaled["spec"].pop("minReplicaCount")
    (error,) = schema_errors(scaled)
    assert "minReplicas" in error

    quick = copy.deepcopy(by_kind(objects, "Deployment")["refund-worker-worker"])
    quick["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 30
    assert workload_problems(quick, objects) == [
        "Deployment/refund-worker-worker: grace period not longer than the role's 30 s shutdown"
    ]
