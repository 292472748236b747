"""The `openapi` scenario: OpenAPI refunds in flight while roles die and the gateway lies.

Batch, trade and coupon refunds interleaved (`tests.support.mixed`), several per trade
and per red envelope, with trades and envelopes that hold exactly (or a little more
than) what is refunded from them. While they flow, workers and schedulers are SIGKILLed
at moments when OpenAPI calls are in flight (a claimed refund whose answer nobody will
read, a hand-over half done), and the OpenAPI gateway's faults switch between the set
that makes the refund and then fails the answer (a hang past the read timeout, a reset,
a 5xx page, `20000` `isp.unknow-error`; a coupon refund answered `INIT` and finished
by its notification) and the set that fails without making it.
The same three witnesses as every scenario: the ledger, the gateway's books (mapi and
OpenAPI, `tests.chaos.openapi_books`), the events on the bus.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from typing import Any, ClassVar

from tests.chaos.checks import FinalState, Result
from tests.chaos.harness import Profile, Run, Scenario
from tests.chaos.load import Load, Message
from tests.support.mixed import MixedLoad, create_books, mixed_load

# The faults that make the refund, then lose or garble its answer (the worker must send
# the same request again and be answered `fund_change` N / the same operation).
TAKEN: dict[str, Any] = {
    "hang": {"rate": 0.03, "seconds": 2.5, "accept": True},
    "reset_after_accept": {"rate": 0.03},
    "http_5xx": {"rate": 0.03, "status": 502, "accept": True},
    "unknown_error": {"rate": 0.03, "accept": True},
    "slow": {"rate": 0.25, "seconds": 0.4},
    # A coupon refund answered INIT, finished and notified later.
    "coupon_init": {"rate": 0.05},
}
# The same faults, failing before anything is made (a proxy failing first).
NOT_TAKEN: dict[str, Any] = {
    **TAKEN,
    "hang": {"rate": 0.03, "seconds": 2.5, "accept": False},
    "http_5xx": {"rate": 0.03, "status": 503, "accept": False},
    "unknown_error": {"rate": 0.03, "accept": False},
}
# What a role holds worth losing: OpenAPI calls in flight (worker), refunds due (scheduler).
IN_HAND = {
    "worker": "SELECT count(*) FROM refunds WHERE channel <> 'batch' AND claimed_at IS NOT NULL",
    "scheduler": "SELECT count(*) FROM refunds WHERE channel <> 'batch'"
    " AND state IN ('pending', 'submitted') AND claimed_at IS NULL",
}


class OpenApi(Scenario):
    name = "openapi"
    seed = 808
    tag = 8
    short = Profile(refunds=2000, trades=0, publish_seconds=10, deadline=150, disruptions=4)
    long = Profile(refunds=20000, trades=0, publish_seconds=45, deadline=480, disruptions=12)
    roles: ClassVar[dict[str, int]] = {
        "intake": 1,
        "worker": 2,
        "notify-server": 1,
        "relay": 1,
        "scheduler": 2,
    }
    batch_max_items = 200

    def __init__(self) -> None:
        self.mixed = MixedLoad()

    def build_load(self, rng: random.Random, profile: Profile) -> Load:
        self.mixed = mixed_load(
            rng, refunds=profile.refunds, tag=self.tag, prefix="o", shares=(0.3, 0.4, 0.3)
        )
        load = Load()
        for request in self.mixed.requests:
            load.add_valid(request)
        # The order system sends some again, under a new event id.
        for request in rng.sample(self.mixed.requests, profile.refunds // 50):
            again = dict(request, event_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)))
            body = json.dumps(again, ensure_ascii=False).encode()
            load.add(Message(body, again["event_id"], refund_id=request["refund_id"]))
        return load

    def faults(self, load: Load) -> dict[str, Any]:
        return {"openapi": TAKEN, "seed": self.seed}

    def before(self, run: Run) -> None:
        create_books(run.sandbox, self.mixed)

    def disrupt(self, run: Run) -> None:
        kills = run.profile.disruptions
        gap = run.profile.publish_seconds / (kills + 1)
        killed: list[str] = []
        in_flight = 0
        for n in range(kills):
            time.sleep(gap * (0.6 + 0.8 * run.rng.random()))
            # Switch the fault set, re-seeding its dice from the run's rng.
            faults = (NOT_TAKEN, TAKEN)[n % 2]
            run.sandbox.set_faults({"openapi": faults, "seed": run.rng.randrange(10**6)})
            role = ("worker", "scheduler")[n % 2]
            candidates = [p for p in run.role_processes() if p[0] == role]
            held = _wait_for(run, IN_HAND[role])
            in_flight += held if role == "worker" else 0
            role, index = run.rng.choice(candidates)
            run.kill(role, index, down_seconds=0.2 + run.rng.random())
            killed.append(f"{role}-{index}")
        run.sandbox.set_faults({"openapi": TAKEN, "seed": run.rng.randrange(10**6)})
        run.notes["killed"] = ",".join(killed)
        run.notes["calls_in_flight_at_kills"] = in_flight

    def extra_checks(self, run: Run, final: FinalState, result: Result) -> None:
        fired = final.sandbox_summary.get("faults_fired", {})
        for name in TAKEN:
            if not fired.get(f"openapi.{name}"):
                result.violations.append(f"fault openapi.{name} never fired")
        channels = dict(run.query("SELECT channel, count(*) FROM refunds GROUP BY 1"))
        result.notes["by_channel"] = "/".join(f"{k}:{v}" for k, v in sorted(channels.items()))
        resent = run.query(
            "SELECT count(*) FROM (SELECT refund_id FROM openapi_calls WHERE kind = 'send'"
            " GROUP BY refund_id HAVING count(*) > 1) AS again"
        )[0][0]
        result.notes["openapi_resent"] = resent
        if not resent:
            result.violations.append("no OpenAPI refund was sent again: faults not exercised")
        if not run.notes.get("calls_in_flight_at_kills"):
            result.violations.append("no worker was killed with OpenAPI calls in flight")


def _wait_for(run: Run, sql: str, patience: float = 3.0) -> int:
    """Wait (a little) until `sql` counts something; the count (0 when it never did)."""
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline:
        count = int(run.query(sql)[0][0])
        if count:
            return count
        time.sleep(0.02)
    return 0
