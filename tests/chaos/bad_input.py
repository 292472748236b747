"""The `bad-input` scenario: broken, conflicting and duplicate requests, forged notifications.

Among good traffic: requests the worker must dead-letter (`tests.chaos.broken`),
conflicting re-sends and requests its rules reject (`tests.chaos.load`), and
malformed notifications POSTed to the notify receiver, which must refuse every
one and store none. Moved out of `tests.chaos.scenarios`, which lists it.
"""

from __future__ import annotations

import random
import threading
import time
from typing import Any, ClassVar

import requests

from devtools.devstack import ROLES
from tests.chaos.broken import NotifyProbe, add_bad_input, notify_probes
from tests.chaos.checks import FinalState, Result
from tests.chaos.harness import ITEM_FAILURE, Profile, Run, Scenario
from tests.chaos.load import Load, add_conflicts, add_rule_breakers, good_load

__all__ = ["BadInput"]


class BadInput(Scenario):
    """Broken, conflicting and duplicate requests, and forged notifications, among good ones."""

    name = "bad-input"
    seed = 606
    tag = 6
    short = Profile(
        refunds=2000, trades=400, publish_seconds=10, deadline=120, bad_messages=2000, probes=300
    )
    long = Profile(
        refunds=10000,
        trades=1500,
        publish_seconds=30,
        deadline=300,
        bad_messages=8000,
        probes=1000,
    )
    # One intake: "the first one stands" is about arrival order, which one consumer keeps.
    roles: ClassVar[dict[str, int]] = {role: 1 for role in ROLES}
    allowed_failures = frozenset({ITEM_FAILURE})

    def build_load(self, rng: random.Random, profile: Profile) -> Load:
        breakers = Load()
        add_rule_breakers(breakers, rng, tag=self.tag, prefix="v", crowded=2, capped=10)
        load = good_load(
            rng,
            refunds=profile.refunds - len(breakers.valid),
            trades=profile.trades,
            tag=self.tag,
            prefix="v",
            resend=0.1,
        )
        start = len(load.messages) // 5  # the first fifth goes out clean
        load.extend(breakers)
        add_conflicts(load, rng, count=profile.bad_messages // 20)
        add_bad_input(load, rng, count=profile.bad_messages, tag=self.tag)
        load.shuffle_tail(rng, start)
        return load

    def faults(self, load: Load) -> dict[str, Any]:
        # Some items fail at the gateway, so a forged "all SUCCESS" would show. Never on
        # the rule-breaking trades: a failed refund frees its place under the limits.
        trades = sorted({str(r["trade_no"]) for r in load.valid.values()} - set(load.rejections))
        return {
            "item_failure": {"rate": 0.05, "code": ITEM_FAILURE, "trade_nos": trades[:5000]},
            "seed": self.seed,
        }

    def disrupt(self, run: Run) -> None:
        run.wait_published(0.3)
        batch_nos: list[str] = []
        while not batch_nos:
            batch_nos = [str(r[0]) for r in run.query("SELECT batch_no FROM batches LIMIT 50")]
            time.sleep(0.2)
        probes = notify_probes(run.rng, count=run.profile.probes, batch_nos=batch_nos)
        answers = _post_probes(run, probes)
        accepted = [
            (p.kind, s, b)
            for p, (s, b) in zip(probes, answers, strict=True)
            if not 400 <= s < 500 or b == b"success"
        ]
        run.notes["probes"] = len(probes)
        for kind, status, body in accepted[:10]:
            run.errors.append(f"malformed notification ({kind}) answered {status} {body[:20]!r}")

    def extra_checks(self, run: Run, final: FinalState, result: Result) -> None:
        stored = run.query(
            "SELECT count(*) FROM notifications WHERE notify_id LIKE %s", "chaosforged%"
        )
        if stored[0][0]:
            result.violations.append(f"{stored[0][0]} forged notifications were stored")
        result.notes["bad_messages"] = len(run.load.expected_dead)


def _post_probes(run: Run, probes: list[NotifyProbe]) -> list[tuple[int, bytes]]:
    url = f"http://127.0.0.1:{run.stack.notify_port}/alipay/notify"
    answers: list[tuple[int, bytes]] = [(0, b"")] * len(probes)
    lock = threading.Lock()
    next_index = 0

    def worker() -> None:
        nonlocal next_index
        session = requests.Session()
        while True:
            with lock:
                i = next_index
                next_index += 1
            if i >= len(probes):
                return
            probe = probes[i]
            response = session.post(
                url, data=probe.body, headers={"Content-Type": probe.content_type}, timeout=30
            )
            answers[i] = (response.status_code, response.content)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers
