"""The Grafana dashboard and the Prometheus alerts name only metrics the code exports.

The exported names are read from the code itself: the modules that define metrics are
imported and `prometheus_client.REGISTRY` is asked for its families, plus the ledger
collector's families (which need no database to be named). A counter `x` is exposed as
`x_total` (and `x_created`), a histogram as `x_bucket`, `x_count`, `x_sum`. Every
expression is parsed with `promql-parser` (the Rust PromQL parser of GreptimeDB, the
grammar and function list of Prometheus), so a typo, an unbalanced bracket or an unknown
function fails here rather than on the Prometheus server.
"""

from __future__ import annotations

import copy
import importlib
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, cast

import promql_parser
import pytest
import yaml
from prometheus_client import REGISTRY
from prometheus_client.metrics_core import Metric

from worker.observability.metrics import LedgerCollector

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "refund-worker.json"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yaml"
RUNBOOK = ROOT / "docs" / "runbook.md"
# Every alert links to its own heading in the runbook: docs/runbook.md#<anchor>.
RUNBOOK_URL = re.compile(re.escape(RUNBOOK.relative_to(ROOT).as_posix()) + r"#([\w-]+)")

# Every module that defines a metric at import time (grep for Counter(, Histogram(, ...).
METRIC_MODULES = (
    "worker.observability.metrics",
    "worker.adapters.gateway.client",
    "worker.adapters.wsgi.receiver",
    "worker.services.results",
    "worker.services.dback",
    "worker.services.reconciler",
    "worker.services.operators",
)
# Series Prometheus itself makes for every target, not exported by the code.
PROMETHEUS_SERIES = {"up", "scrape_duration_seconds", "scrape_samples_scraped", "ALERTS"}
# Grafana's interval variables, replaced by a duration before parsing.
GRAFANA_INTERVALS = re.compile(
    r"\$(__rate_interval|__interval|__range)\b|\$\{(__rate_interval|__interval|__range)\}"
)

SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "gauge": ("",),
    "info": ("_info",),
    "stateset": ("",),
    "gaugehistogram": ("_bucket", "_gcount", "_gsum"),
    "unknown": ("",),
}


def exposed_names(families: Iterable[Metric]) -> set[str]:
    """The series names a scrape shows for these families."""
    return {family.name + suffix for family in families for suffix in SUFFIXES[family.type]}


def exported_metric_names() -> set[str]:
    for module in METRIC_MODULES:
        importlib.import_module(module)
    ledger = LedgerCollector(cast(Any, None))._families()
    return exposed_names(REGISTRY.collect()) | exposed_names(ledger)


def parse(expr: str) -> Any:
    return promql_parser.parse(GRAFANA_INTERVALS.sub("5m", expr))


def metric_names(expr: str) -> set[str]:
    """Every metric an expression selects, by name or by a `__name__` matcher."""
    found: set[str] = set()

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            if node.name:
                found.add(node.name)
            for matcher in node.matchers.matchers:
                if matcher.name == "__name__":
                    found.add(matcher.value)

    promql_parser.walk(parse(expr), visit)
    return found


def dashboard() -> dict[str, Any]:
    loaded = json.loads(DASHBOARD.read_text())
    assert isinstance(loaded, dict)
    return loaded


def dashboard_panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    panels: list[dict[str, Any]] = []
    for panel in board["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))  # a collapsed row keeps its panels inside
    return panels


def dashboard_exprs(board: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in dashboard_panels(board) for t in p.get("targets", [])]


def alert_rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(ALERTS.read_text())
    return [rule for group in document["spec"]["groups"] for rule in group["rules"]]


def unknown_metrics(exprs: Iterable[str]) -> set[str]:
    known = exported_metric_names() | PROMETHEUS_SERIES
    return {name for expr in exprs for name in metric_names(expr)} - known


def github_anchor(heading: str) -> str:
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


# --- the exported names -------------------------------------------------------------------


def test_the_exported_names_are_read_from_the_code() -> None:
    names = exported_metric_names()
    assert {
        "refund_completed_published_total",
        "alipay_gateway_request_seconds_count",
        "alipay_gateway_request_seconds_bucket",
        "alipay_notify_requests_total",
        "refund_waiting",
        "refund_batches_flagged",
        "refund_submission_halted",
    } <= names
    # A counter is never exposed under its bare name, a gauge never with a suffix.
    assert "refund_completed_published" not in names
    assert "refund_waiting_total" not in names


# --- the dashboard ------------------------------------------------------------------------


def test_the_dashboard_is_a_grafana_dashboard() -> None:
    board = dashboard()
    assert board["title"] and board["uid"] and isinstance(board["schemaVersion"], int)
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in dashboard_panels(board)]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    for panel in dashboard_panels(board):
        assert panel["type"] and panel["title"], panel
        grid = panel["gridPos"]
        assert all(isinstance(grid[k], int) for k in ("h", "w", "x", "y")), panel["title"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip() and target["refId"], panel["title"]


def test_every_dashboard_expression_parses() -> None:
    for expr in dashboard_exprs(dashboard()):
        parse(expr)


def test_the_dashboard_uses_only_exported_metrics() -> None:
    assert unknown_metrics(dashboard_exprs(dashboard())) == set()


def test_the_dashboard_shows_what_operators_need() -> None:
    used = {name for expr in dashboard_exprs(dashboard()) for name in metric_names(expr)}
    assert {
        "refund_completed_published_total",
        "refund_waiting",
        "refund_oldest_waiting_seconds",
        "alipay_gateway_request_seconds_count",
        "refund_notifications_processed_total",
        "alipay_notify_requests_total",
        "refund_batches_flagged",
        "refund_reconcile_queries_total",
        "refund_batches_released_total",
        "refund_notifications_unapplied",
        "refund_outbox_backlog",
    } <= used


def test_a_dashboard_with_an_unknown_metric_fails() -> None:
    board = copy.deepcopy(dashboard())
    panel = next(p for p in board["panels"] if p["type"] != "row")
    panel["targets"].append({"refId": "Z", "expr": "sum(rate(refund_payments_total[5m]))"})
    assert unknown_metrics(dashboard_exprs(board)) == {"refund_payments_total"}
    # A counter under its bare name or a gauge with a counter's suffix is unknown too.
    assert unknown_metrics(["rate(refund_completed_published[5m])"]) == {
        "refund_completed_published"
    }
    assert unknown_metrics(["refund_waiting_total"]) == {"refund_waiting_total"}
    assert unknown_metrics(['{__name__="refund_outbox_backlogs"}']) == {"refund_outbox_backlogs"}


# --- the alerts ---------------------------------------------------------------------------


def test_the_alerts_are_a_prometheus_rule() -> None:
    document = yaml.safe_load(ALERTS.read_text())
    assert document["apiVersion"] == "monitoring.coreos.com/v1"
    assert document["kind"] == "PrometheusRule"
    assert document["metadata"]["name"]
    names = [rule["alert"] for rule in alert_rules()]
    assert len(names) == len(set(names)), "alert names are unique"


def runbook_anchors(text: str) -> dict[str, str]:
    """GitHub anchor -> heading text of every Markdown heading outside code blocks."""
    anchors: dict[str, str] = {}
    fenced = False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and re.match(r"#{1,6} ", line):
            heading = line.lstrip("#").strip()
            anchor = github_anchor(heading)
            assert anchor not in anchors, f"two runbook headings share the anchor {anchor!r}"
            anchors[anchor] = heading
    return anchors


def runbook_link_problems(rules: list[dict[str, Any]], anchors: dict[str, str]) -> list[str]:
    """What is wrong with the alerts' runbook links: each must name a heading of the
    runbook that is about that alert, and no two alerts may share one."""
    problems: list[str] = []
    linked: dict[str, str] = {}
    for rule in rules:
        name = rule["alert"]
        match = RUNBOOK_URL.fullmatch(rule["annotations"].get("runbook_url", ""))
        if match is None:
            problems.append(f"{name}: runbook_url is not docs/runbook.md#<anchor>")
            continue
        anchor = match.group(1)
        if anchor not in anchors:
            problems.append(f"{name}: no heading #{anchor} in docs/runbook.md")
        elif name not in anchors[anchor]:
            problems.append(f"{name}: #{anchor} is the heading {anchors[anchor]!r}")
        if anchor in linked:
            problems.append(f"{name}: #{anchor} is {linked[anchor]}'s already")
        linked.setdefault(anchor, name)
    return problems


def test_every_alert_has_severity_summary_description_and_runbook() -> None:
    for rule in alert_rules():
        assert rule["labels"]["severity"] in ("critical", "warning", "info"), rule["alert"]
        annotations = rule["annotations"]
        assert annotations["summary"].strip() and annotations["description"].strip()
        if "for" in rule:
            assert re.fullmatch(r"(\d+[smhd])+", rule["for"]), rule["alert"]
    anchors = runbook_anchors(RUNBOOK.read_text(encoding="utf-8"))
    assert runbook_link_problems(alert_rules(), anchors) == []


def test_a_broken_runbook_link_fails() -> None:
    anchors = runbook_anchors(RUNBOOK.read_text(encoding="utf-8"))
    rules = copy.deepcopy(alert_rules()[:3])
    first, second, third = (rule["alert"] for rule in rules)
    rules[0]["annotations"]["runbook_url"] = "docs/runbook.md#no-such-heading"
    rules[1]["annotations"]["runbook_url"] = "README.md#runbook-flags-and-decisions"
    rules[2]["annotations"]["runbook_url"] = "docs/runbook.md#" + github_anchor(first)
    problems = runbook_link_problems(rules, anchors)
    assert [p.split(":", 1)[0] for p in problems] == [first, second, third]


def test_the_runbook_links_within_itself_resolve() -> None:
    text = RUNBOOK.read_text(encoding="utf-8")
    anchors = runbook_anchors(text)
    assert {a for a in re.findall(r"\]\(#([^)]+)\)", text) if a not in anchors} == set()


def test_every_alert_expression_parses() -> None:
    for rule in alert_rules():
        parse(rule["expr"])


def test_the_alerts_use_only_exported_metrics() -> None:
    assert unknown_metrics(rule["expr"] for rule in alert_rules()) == set()


@pytest.mark.parametrize(
    "needle",
    [
        'refund_batches_flagged{flag="configuration_error"}',
        "refund_oldest_waiting_seconds",
        'refund_batches_flagged{flag="notification_overdue"}',
        'refund_intake_messages_total{outcome="dead_lettered"}',
        "refund_outbox_backlog",
        "refund_oldest_unapplied_notification_seconds",
        "up{",
    ],
)
def test_an_alert_watches(needle: str) -> None:
    assert any(needle in " ".join(rule["expr"].split()) for rule in alert_rules()), needle


@pytest.mark.parametrize(
    "expr",
    [
        "sum(rate(refund_completed_published_total[5m])",  # unbalanced
        "max(refund_waiting}",  # mismatched
        "ratee(refund_completed_published_total[5m])",  # unknown function
        "max(refund_outbox_backlog) >",  # incomplete
        "refund_waiting{state=pending}",  # unquoted label value
    ],
)
def test_a_broken_expression_fails_the_parser(expr: str) -> None:
    with pytest.raises(ValueError):
        parse(expr)
