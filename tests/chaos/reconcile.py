"""The `reconcile` scenario: the gateway departs from the ideal while roles are killed.

Every legal result shape, odd failure codes, some accepted batches never
notified, connections reset after accepting, and workers and schedulers killed
while reconciliation queries are in flight. Reconciliation by query must settle
the silent batches: every refund ends once, nothing is paid twice, one event
identity per refund (the suite's three witnesses: ledger, gateway books, bus).
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any, ClassVar

from tests.chaos.checks import FinalState, Result
from tests.chaos.harness import ITEM_FAILURE, Profile, Run, Scenario
from tests.chaos.load import Load, good_load

ODD_CODE = "REFUND_CHARGE_ERROR_X"

# A role holds reconciliation work while batches wait for a query.
RECONCILING = (
    "SELECT count(*) FROM batches WHERE state IN ('accepted', 'unknown')"
    " AND created_at < clock_timestamp() - interval '3 s'"
)


class Reconcile(Scenario):
    name = "reconcile"
    seed = 707
    tag = 7
    short = Profile(refunds=2000, trades=400, publish_seconds=10, deadline=150, disruptions=4)
    long = Profile(refunds=20000, trades=3000, publish_seconds=40, deadline=480, disruptions=12)
    roles: ClassVar[dict[str, int]] = {
        "intake": 1,
        "worker": 2,
        "notify-server": 1,
        "relay": 1,
        "scheduler": 2,
    }
    batch_max_items = 100
    allowed_failures = frozenset({ITEM_FAILURE, ODD_CODE})

    def build_load(self, rng: random.Random, profile: Profile) -> Load:
        return good_load(
            rng,
            refunds=profile.refunds,
            trades=profile.trades,
            tag=self.tag,
            prefix="q",
            resend=0.02,
        )

    def faults(self, load: Load) -> dict[str, Any]:
        return {
            "result_shapes": {"rate": 1.0, "odd_codes": [ODD_CODE]},
            # Bounded counts with high rates: each fires early whatever the number of batches
            # the run's timing makes, and the rest of the run sees the ideal gateway.
            "notify_never": {"rate": 0.3, "count": 6},
            "reset_after_accept": {"rate": 0.3, "count": 4},
            "item_failure": {"rate": 0.01, "code": ITEM_FAILURE},
            "seed": self.seed,
        }

    def extra_env(self, workdir: Path) -> dict[str, str]:
        return {"RECONCILE_AFTER_SECONDS": "3"}

    def disrupt(self, run: Run) -> None:
        kills = run.profile.disruptions
        gap = run.profile.publish_seconds / (kills + 1)
        killed: list[str] = []
        for n in range(kills):
            time.sleep(gap * (0.6 + 0.8 * run.rng.random()))
            role = ("worker", "scheduler")[n % 2]
            candidates = [p for p in run.role_processes() if p[0] == role]
            deadline = time.monotonic() + 5.0
            while time.monotonic() < deadline and not run.query(RECONCILING)[0][0]:
                time.sleep(0.05)
            role, index = run.rng.choice(candidates)
            run.kill(role, index, down_seconds=0.2 + run.rng.random())
            killed.append(f"{role}-{index}")
        run.notes["killed"] = ",".join(killed)

    def extra_checks(self, run: Run, final: FinalState, result: Result) -> None:
        fired = final.sandbox_summary.get("faults_fired", {})
        for name in ("result_shapes", "notify_never", "reset_after_accept"):
            if not fired.get(name):
                result.violations.append(f"fault {name} never fired")
        sources = dict(run.query("SELECT result_source, count(*) FROM refunds GROUP BY 1"))
        result.notes["settled_by_query"] = int(sources.get("query", 0))
        if not sources.get("query"):
            result.violations.append("no refund was settled by a query")
