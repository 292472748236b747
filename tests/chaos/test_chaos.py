"""The fault-injection suite, short profile: every scenario must keep every invariant.

Each scenario runs the whole stack as processes against the real RabbitMQ,
PostgreSQL and the sandbox gateway (see `tests.chaos.harness`). The broker and
database scenarios really stop those servers unless `CHAOS_OUTAGES=scoped`.
The long profile is `make chaos`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chaos.harness import default_outage_mode, keep_failed_from_env, run_scenario
from tests.chaos.scenarios import SCENARIOS

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_scenario_keeps_every_invariant(name: str, tmp_path: Path) -> None:
    result = run_scenario(
        SCENARIOS[name],
        "short",
        outage_mode=default_outage_mode(),
        workdir=tmp_path / name,
        keep_failed=keep_failed_from_env(),
    )
    print(result.line())
    assert result.refunds > 0 and result.disruptions >= SCENARIOS[name].short.disruptions
    assert result.passed, "\n".join([result.line(), *result.violations])
    assert result.lost == result.double_paid == result.duplicate_event_ids == 0
