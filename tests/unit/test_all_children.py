"""`refund-worker all` gives each child its own metrics port."""

from __future__ import annotations

import pytest

from worker.entrypoints.roles import all as all_role


def test_each_child_gets_its_own_metrics_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALIPAY_MD5_KEY", "k" * 32)
    envs = [all_role._child_env(9100, i) for i in range(len(all_role.ROLES))]
    assert [e["METRICS_PORT"] for e in envs if e] == ["9100", "9101", "9102", "9103", "9104"]
    assert all(e is not None and e["ALIPAY_MD5_KEY"] == "k" * 32 for e in envs)


def test_without_a_metrics_port_children_inherit_the_environment() -> None:
    assert all_role._child_env(None, 3) is None
