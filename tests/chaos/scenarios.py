"""The failure modes production will bring, each with a fixed seed and two sizes.

`short` runs inside `make test` (a few thousand refunds, a few disruptions);
`long` is `make chaos` (20,000 refunds over 3,000 trades,
at least ten kills).

The scenarios with modules of their own: `bad-input` (`tests.chaos.bad_input`),
`reconcile` (`tests.chaos.reconcile`), `openapi` (`tests.chaos.openapi`).
"""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

from devtools.devstack import ROLES
from tests.chaos import infra
from tests.chaos.checks import FinalState, Result
from tests.chaos.harness import ITEM_FAILURE, Profile, Run, Scenario
from tests.chaos.load import Load, add_rule_breakers, good_load
from worker.mapi import BEIJING


class Kill(Scenario):
    """SIGKILL random role processes (their whole process group) and start them again."""

    name = "kill"
    seed = 101
    tag = 1
    short = Profile(refunds=2500, trades=400, publish_seconds=12, deadline=120, disruptions=4)
    long = Profile(refunds=20000, trades=3000, publish_seconds=45, deadline=420, disruptions=12)
    roles: ClassVar[dict[str, int]] = {
        "intake": 2,
        "worker": 2,
        "notify-server": 1,
        "relay": 1,
        "scheduler": 2,
    }

    def build_load(self, rng: random.Random, profile: Profile) -> Load:
        # Trades over the worker's own limits, checked by two intake replicas at once.
        load = Load()
        add_rule_breakers(load, rng, tag=self.tag, prefix="k", crowded=1, capped=5)
        load.extend(
            good_load(
                rng,
                refunds=profile.refunds - len(load.valid),
                trades=profile.trades,
                tag=self.tag,
                prefix="k",
                resend=0.02,
            )
        )
        load.shuffle_tail(rng, 0)
        return load

    def faults(self, load: Load) -> dict[str, Any]:
        # Answers that take a while, as production's do, so a kill often lands mid-request;
        # some never come in time and leave their batch in doubt when its worker dies.
        return {
            "slow": {"rate": 0.4, "seconds": 0.4},
            "hang": {"rate": 0.1, "seconds": 2.0, "accept": False},
            "seed": self.seed,
        }

    def disrupt(self, run: Run) -> None:
        kills = run.profile.disruptions
        gap = run.profile.publish_seconds / (kills + 1)
        killed: list[str] = []
        for n in range(kills):
            time.sleep(gap * (0.6 + 0.8 * run.rng.random()))
            # Every role at least once, then at random.
            if n < len(ROLES):
                role = ROLES[n]
                candidates = [p for p in run.role_processes() if p[0] == role]
            else:
                candidates = run.role_processes()
            role, index = run.rng.choice(candidates)
            _wait_for_work_in_hand(run, role)
            run.kill(role, index, down_seconds=0.2 + run.rng.random())
            killed.append(f"{role}-{index}")
        run.notes["killed"] = ",".join(killed)


# What a role has in hand worth losing: a kill is timed to land while it is there.
WORK_IN_HAND = {
    "worker": "SELECT count(*) FROM batches WHERE state = 'submitting'",
    "relay": "SELECT count(*) FROM outbox",
    "scheduler": "SELECT count(*) FROM refunds WHERE state = 'pending'",
    "intake": "SELECT count(*) FROM refunds"
    " WHERE received_at > clock_timestamp() - interval '0.2 s'",
    "notify-server": "SELECT count(*) FROM batches WHERE state = 'accepted'",
}


def _wait_for_work_in_hand(run: Run, role: str, patience: float = 3.0) -> None:
    """Wait (a little) until `role` is likely to hold work, so its kill really costs something."""
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline:
        if run.query(WORK_IN_HAND[role])[0][0]:
            return
        time.sleep(0.02)


class Broker(Scenario):
    """RabbitMQ goes away twice while refunds flow."""

    name = "broker"
    seed = 202
    tag = 2
    short = Profile(
        refunds=2500,
        trades=400,
        publish_seconds=14,
        deadline=150,
        disruptions=2,
        outage_seconds=3,
    )
    long = Profile(
        refunds=20000,
        trades=3000,
        publish_seconds=45,
        deadline=420,
        disruptions=2,
        outage_seconds=6,
    )

    def build_load(self, rng: random.Random, profile: Profile) -> Load:
        return good_load(
            rng, refunds=profile.refunds, trades=profile.trades, tag=self.tag, prefix="b"
        )

    def disrupt(self, run: Run) -> None:
        for fraction in (0.3, 0.65)[: run.profile.disruptions]:
            run.wait_published(fraction)
            run.broker_outage(run.profile.outage_seconds)
        run.notes["outages"] = run.outage_mode


class Database(Scenario):
    """PostgreSQL stops (`-m immediate`: no checkpoint, crash recovery) and starts once."""

    name = "database"
    seed = 303
    tag = 3
    short = Profile(
        refunds=2500,
        trades=400,
        publish_seconds=12,
        deadline=150,
        disruptions=1,
        outage_seconds=3,
    )
    long = Profile(
        refunds=20000,
        trades=3000,
        publish_seconds=45,
        deadline=420,
        disruptions=1,
        outage_seconds=6,
    )

    def build_load(self, rng: random.Random, profile: Profile) -> Load:
        return good_load(
            rng, refunds=profile.refunds, trades=profile.trades, tag=self.tag, prefix="d"
        )

    def disrupt(self, run: Run) -> None:
        run.wait_published(0.5)
        run.database_outage(run.profile.outage_seconds)
        run.notes["outages"] = run.outage_mode


# Every gateway fault at once. Rates are per opportunity (a request, an item, a delivery).
GATEWAY_FAULTS: dict[str, Any] = {
    "hang": {"rate": 0.04, "seconds": 2.5, "accept": True},
    "reset_after_accept": {"rate": 0.04},
    "http_5xx": {"rate": 0.04, "status": 502, "accept": True},
    "lock_error": {"rate": 0.08},
    "slow": {"rate": 0.08, "seconds": 0.6},
    "notify_lost": {"rate": 0.15},
    "notify_duplicate": {"rate": 0.15},
    "notify_reorder": {"rate": 0.15, "max_hold_seconds": 2},
    "notify_bad_sign": {"rate": 0.15},
    "item_failure": {"rate": 0.01, "code": ITEM_FAILURE},
}
# The same, with the faults that leave the batch *not* taken (a proxy failing first).
GATEWAY_FAULTS_NOT_TAKEN: dict[str, Any] = {
    **GATEWAY_FAULTS,
    "hang": {"rate": 0.04, "seconds": 2.5, "accept": False},
    "http_5xx": {"rate": 0.04, "status": 503, "accept": False},
}


class Gateway(Scenario):
    """Every fault the sandbox knows, switched on together, alternating accept/not-accept."""

    name = "gateway"
    seed = 404
    tag = 4
    short = Profile(refunds=2500, trades=400, publish_seconds=12, deadline=150)
    long = Profile(refunds=20000, trades=3000, publish_seconds=40, deadline=420)
    batch_max_items = 200
    allowed_failures = frozenset({ITEM_FAILURE})

    def build_load(self, rng: random.Random, profile: Profile) -> Load:
        return good_load(
            rng,
            refunds=profile.refunds,
            trades=profile.trades,
            tag=self.tag,
            prefix="g",
            resend=0.02,
        )

    def faults(self, load: Load) -> dict[str, Any]:
        return {**GATEWAY_FAULTS, "seed": self.seed}

    def disrupt(self, run: Run) -> None:
        switches = 0
        sets = (GATEWAY_FAULTS_NOT_TAKEN, GATEWAY_FAULTS)
        while run.published < len(run.load.messages):
            time.sleep(2.0)
            faults = dict(sets[switches % 2])
            # A fault the dice have spared so far fires at its next opportunity.
            fired = run.sandbox.faults()["fired_total"]
            for name, options in GATEWAY_FAULTS.items():
                if not fired.get(name):
                    faults[name] = {k: v for k, v in options.items() if k != "rate"} | {"count": 1}
            # Replacing the set re-seeds the dice: seed each switch from the run's rng.
            run.sandbox.set_faults({**faults, "seed": run.rng.randrange(10**6)})
            switches += 1
        run.sandbox.set_faults({**GATEWAY_FAULTS, "seed": run.rng.randrange(10**6)})
        run.notes["fault_switches"] = switches

    def extra_checks(self, run: Run, final: FinalState, result: Result) -> None:
        fired = final.sandbox_summary.get("faults_fired", {})
        result.notes["faults_fired"] = sum(fired.values())
        for name in GATEWAY_FAULTS:
            if not fired.get(name):
                result.violations.append(f"fault {name} never fired")
        forged = final.sandbox_summary["notifications"]["forged_acknowledged"]
        if forged:
            result.violations.append(f"{forged} forged notifications were answered success")


class Rollover(Scenario):
    """Beijing midnight passes while batches' outcomes are unknown.

    Every process's clock (CLOCK_OFFSET_FILE) and the sandbox's are moved so that
    midnight falls in the middle of the load. For a few seconds around midnight the
    gateway takes every batch but answers too late, so those batches are "maybe
    sent" when their day ends: they must be waited on (never renumbered) until their
    notification arrives, which the sandbox delays by a few seconds.
    """

    name = "rollover"
    seed = 505
    tag = 5
    short = Profile(refunds=1500, trades=300, publish_seconds=12, deadline=120)
    long = Profile(refunds=5000, trades=800, publish_seconds=16, deadline=180)
    batch_max_items = 100
    batch_max_wait = 0.2
    process_delay = 6000.0  # x time_factor 0.001: notifications come 6 s after acceptance
    window_before = 2.5  # seconds before midnight the gateway starts answering too late
    window_after = 1.0

    def clock_file(self, workdir: Path) -> Path:
        return workdir / "clock-offset"

    def extra_env(self, workdir: Path) -> dict[str, str]:
        return {"CLOCK_OFFSET_FILE": str(self.clock_file(workdir))}

    def build_load(self, rng: random.Random, profile: Profile) -> Load:
        return good_load(
            rng, refunds=profile.refunds, trades=profile.trades, tag=self.tag, prefix="r"
        )

    def before(self, run: Run) -> None:
        now = datetime.now(tz=UTC)
        midnight_in = run.profile.publish_seconds / 2 + 1.5  # +1.5: the clocks re-read the file
        beijing = now.astimezone(BEIJING)
        next_midnight = datetime.combine(
            beijing.date() + timedelta(days=1), datetime.min.time(), tzinfo=BEIJING
        )
        offset = (next_midnight - now).total_seconds() - midnight_in
        infra.write_atomically(self.clock_file(run.workdir), f"{offset:.3f}\n")
        run.sandbox.set_clock_offset(offset)
        run.notes["midnight_after"] = f"{midnight_in:.1f}s"
        run.marks["midnight"] = time.monotonic() + midnight_in
        time.sleep(1.5)

    def disrupt(self, run: Run) -> None:
        time.sleep(max(0.0, run.marks["midnight"] - self.window_before - time.monotonic()))
        run.sandbox.set_faults({"hang": {"seconds": 2.0, "accept": True}})
        time.sleep(max(0.0, run.marks["midnight"] + self.window_after - time.monotonic()))
        run.sandbox.clear_faults()
        run.disruptions += 1

    def extra_checks(self, run: Run, final: FinalState, result: Result) -> None:
        waited = [
            b
            for b, (_, _, error, _) in final.batches.items()
            if error and error.startswith("batch day is over and an earlier attempt")
        ]
        result.notes["waited_over_midnight"] = len(waited)
        if not waited:
            result.violations.append("no batch was in doubt at midnight: scenario not exercised")
        for batch_no in waited:
            state = final.batches[batch_no][0]
            if state != "completed":
                result.violations.append(f"batch {batch_no} in doubt at midnight ended {state}")
        days = {b[:8] for b in final.batches}
        if len(days) < 2:
            result.violations.append(f"all batches dated {days}: midnight never passed")


def _all() -> tuple[Scenario, ...]:
    from tests.chaos.bad_input import BadInput
    from tests.chaos.openapi import OpenApi
    from tests.chaos.reconcile import Reconcile

    return (Kill(), Broker(), Database(), Gateway(), Rollover(), BadInput(), Reconcile(), OpenApi())


SCENARIOS: dict[str, Scenario] = {s.name: s for s in _all()}
