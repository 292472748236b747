"""The scenario runner: the whole stack as processes, a load, a chaos loop, then the checks.

One run of one scenario:

1. a fresh RabbitMQ vhost, database and sandbox (`devtools.devstack.Stack`), every role
   its own process, a consumer of refund.completed on the side;
2. the scenario's load published over a few seconds while its disruption runs in a
   thread (killing roles, taking RabbitMQ or PostgreSQL away, switching gateway
   faults, moving the clock); a watcher restarts any role that exits on its own and
   records it, since a role that dies of a dependency outage is a defect;
3. wait until every valid refund has its event and nothing moves any more (sandbox
   idle, queues and outbox empty), or the scenario's deadline passes;
4. gather the final state and run `tests.chaos.checks`.

Seeds are fixed: the load and every choice of the chaos loop (which role, when, how
long) come from the scenario's seed, so a rerun sends the same messages and makes the
same choices; only the processes' own timing differs.

Waiting for the end of step 3 and gathering the final state of step 4 are in
`tests.chaos.settle`.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import psycopg
import structlog

from devtools.devstack import ROLES, Stack, StackConfig
from sandbox.client import SandboxClient
from tests.chaos import infra
from tests.chaos.checks import FinalState, Result, check
from tests.chaos.load import Load
from tests.chaos.settle import final_state, log_alarms, settle
from tests.chaos.traffic import EventCollector, LoadPublisher

log = structlog.get_logger("chaos")

# The failure code of the scenarios' `item_failure` fault: a refund the gateway refuses.
ITEM_FAILURE = "SELLER_BALANCE_NOT_ENOUGH"

# Short gateway timeouts keep the in-flight lease (connect + read + 10 s) at 12.5 s, so a
# submission lost with its worker is taken up again within a scenario's budget.
GATEWAY_TIMEOUTS = {"GATEWAY_CONNECT_TIMEOUT": "1.0", "GATEWAY_READ_TIMEOUT": "1.5"}


@dataclass(frozen=True)
class Profile:
    """How big and how long one run of a scenario is."""

    refunds: int
    trades: int
    publish_seconds: float
    deadline: float  # seconds from the first publish until everything must have settled
    disruptions: int = 0  # kills or outages, as the scenario counts them
    outage_seconds: float = 3.0
    bad_messages: int = 0
    probes: int = 0


class Scenario:
    """One failure mode. Subclasses fill in the load, the stack and the disruption."""

    name = "base"
    seed = 0
    tag = 0  # keeps trade numbers of scenarios apart
    short = Profile(refunds=100, trades=20, publish_seconds=1, deadline=60)
    long = Profile(refunds=100, trades=20, publish_seconds=1, deadline=60)
    roles: ClassVar[dict[str, int]] = {role: 1 for role in ROLES}
    batch_max_items = 500
    batch_max_wait = 0.3
    time_factor = 0.001
    process_delay = 1.0  # sandbox seconds (before time_factor) until a batch's first notification
    allowed_failures: frozenset[str] = frozenset()

    def profile(self, name: str) -> Profile:
        return {"short": self.short, "long": self.long}[name]

    def faults(self, load: Load) -> dict[str, Any]:
        """Sandbox faults in force from the start."""
        return {}

    def extra_env(self, workdir: Path) -> dict[str, str]:
        """Environment of every role process on top of the stack's."""
        return {}

    def build_load(self, rng: random.Random, profile: Profile) -> Load:
        raise NotImplementedError

    def before(self, run: Run) -> None:
        """After the stack is up, before anything is published."""

    def disrupt(self, run: Run) -> None:
        """The chaos loop; runs in a thread while the load is published."""

    def extra_checks(self, run: Run, final: FinalState, result: Result) -> None:
        """Scenario-specific checks (e.g. that the faults really fired)."""


@dataclass
class Run:
    """A scenario in progress: the stack, the traffic and the disruption's tools."""

    scenario: Scenario
    profile: Profile
    profile_name: str
    outage_mode: str
    workdir: Path
    rng: random.Random
    stack: Stack
    vhost: infra.Vhost
    load: Load
    publisher: LoadPublisher | None = None
    collector: EventCollector | None = None
    sandbox: SandboxClient = field(init=False)
    disruptions: int = 0
    notes: dict[str, object] = field(default_factory=dict)
    marks: dict[str, float] = field(default_factory=dict)  # monotonic times a scenario keeps
    unplanned_exits: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    published: int = 0
    started: float = 0.0
    _roles_lock: threading.Lock = field(default_factory=threading.Lock)

    # --- tools for disruptions ------------------------------------------------------------

    def wait_published(self, fraction: float, timeout: float = 300) -> None:
        """Block until `fraction` of the load has been published."""
        target = int(len(self.load.messages) * fraction)
        deadline = time.monotonic() + timeout
        while self.published < target and time.monotonic() < deadline:
            time.sleep(0.05)

    def kill(self, role: str, index: int, down_seconds: float) -> None:
        """SIGKILL one role process (its whole process group), then start it again."""
        with self._roles_lock:
            self.stack.kill_role(role, index, signal.SIGKILL)
        self.disruptions += 1
        log.info("chaos.killed", role=role, index=index)
        time.sleep(down_seconds)
        with self._roles_lock:
            self.stack.start_role(role, index)

    def role_processes(self) -> list[tuple[str, int]]:
        with self._roles_lock:
            return sorted(self.stack.processes)

    def broker_outage(self, seconds: float) -> None:
        with infra.broker_outage(self.outage_mode, self.vhost):
            self.disruptions += 1
            log.info("chaos.broker_down", mode=self.outage_mode, seconds=seconds)
            time.sleep(seconds)

    def database_outage(self, seconds: float) -> None:
        with infra.database_outage(self.outage_mode, self.stack.db_name, self.stack.database_url):
            self.disruptions += 1
            log.info("chaos.database_down", mode=self.outage_mode, seconds=seconds)
            time.sleep(seconds)

    def query(self, sql: str, *params: object, timeout: float = 120) -> list[tuple[Any, ...]]:
        """A query against the run's database, retried while the database is away."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(self.stack.database_url, connect_timeout=3) as conn:
                    return conn.execute(sql, params).fetchall()
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    # --- the role watcher -------------------------------------------------------------------

    def watch_roles(self, stop: threading.Event) -> None:
        """Restart any role that exited without being killed by the chaos loop, and say so."""
        while not stop.wait(0.5):
            with self._roles_lock:
                for key, proc in list(self.stack.processes.items()):
                    code = proc.process.poll()
                    if code is None:
                        continue
                    self.unplanned_exits.append(f"{key[0]}-{key[1]} exited with {code}")
                    log.error("chaos.role_exited", role=key[0], index=key[1], code=code)
                    self.stack.kill_role(*key)
                    self.stack.start_role(*key)


def _background(target: Callable[[], None], name: str, errors: list[str]) -> threading.Thread:
    def guarded() -> None:
        try:
            target()
        except Exception as exc:  # reported as a violation
            errors.append(f"{name} failed: {type(exc).__name__}: {exc}")
            log.exception("chaos.thread_failed", thread=name)

    thread = threading.Thread(target=guarded, name=f"chaos-{name}", daemon=True)
    thread.start()
    return thread


def run_scenario(
    scenario: Scenario,
    profile_name: str,
    *,
    outage_mode: str = "real",
    workdir: Path | None = None,
    keep_failed: bool = False,
) -> Result:
    """Run one scenario once and return its result (violations empty when all held).

    The logs of a failed run stay in its workdir; with `keep_failed` its database,
    vhost and sandbox books stay too, for a post-mortem (drop them by hand after).
    """
    profile = scenario.profile(profile_name)
    base = workdir or Path(tempfile.mkdtemp(prefix=f"chaos-{scenario.name}-"))
    run_id = uuid.uuid4().hex[:8]
    rng = random.Random(scenario.seed)
    load = scenario.build_load(rng, profile)
    result: Result
    with infra.Vhost(f"chaos-{scenario.name}-{run_id}") as vhost:
        config = StackConfig(
            workdir=base / "stack",
            amqp_url=vhost.url,
            batch_max_items=scenario.batch_max_items,
            batch_max_wait=scenario.batch_max_wait,
            time_factor=scenario.time_factor,
            roles=dict(scenario.roles),
            extra_env={**GATEWAY_TIMEOUTS, **scenario.extra_env(base)},
            sandbox_args=_sandbox_args(scenario, load),
            run_id=run_id,
        )
        with Stack(config) as stack:
            run = Run(
                scenario=scenario,
                profile=profile,
                profile_name=profile_name,
                outage_mode=outage_mode,
                workdir=base,
                rng=random.Random(scenario.seed + 1),
                stack=stack,
                vhost=vhost,
                load=load,
            )
            run.sandbox = SandboxClient(stack.sandbox_url)
            result = _drive(run)
            stack.config.keep = vhost.keep = keep_failed and not result.passed
    if result.passed:
        if workdir is None:
            shutil.rmtree(base, ignore_errors=True)
    else:
        result.notes["workdir"] = str(base)
    return result


def _sandbox_args(scenario: Scenario, load: Load) -> list[str]:
    args = ["--process-delay", str(scenario.process_delay), "--seed", str(scenario.seed)]
    faults = scenario.faults(load)
    if faults:
        args += ["--faults", json.dumps(faults)]
    return args


def _drive(run: Run) -> Result:
    scenario, stack = run.scenario, run.stack
    collector = EventCollector(run.vhost.url, stack.observer_queue)
    collector.start()
    run.collector = collector
    scenario.before(run)

    def progress(sent: int) -> None:
        run.published = sent

    publisher = LoadPublisher(
        run.vhost.url,
        stack.topology,
        run.load.messages,
        seconds=run.profile.publish_seconds,
        on_progress=progress,
    )
    run.publisher = publisher
    stop_watch = threading.Event()
    run.started = time.monotonic()
    publisher.start()
    watcher = _background(lambda: run.watch_roles(stop_watch), "watcher", run.errors)
    disruption = _background(lambda: scenario.disrupt(run), "disruption", run.errors)
    publisher.join()
    disruption.join()
    settled = settle(run)
    stop_watch.set()
    watcher.join()
    seconds = (settled or time.monotonic()) - run.started
    final = final_state(run)
    collector.stop()

    result = Result(
        scenario=scenario.name,
        profile=run.profile_name,
        refunds=len(run.load.valid),
        seconds=seconds,
        disruptions=run.disruptions,
        notes=dict(run.notes),
    )
    check(result, run.load, final, allowed_failures=scenario.allowed_failures)
    scenario.extra_checks(run, final, result)
    if publisher.error is not None:
        result.violations.append(f"publishing failed: {publisher.error}")
    if settled is None:
        result.violations.append(f"did not settle within {run.profile.deadline:.0f} s")
    elif seconds > run.profile.deadline:
        result.violations.append(
            f"took {seconds:.0f} s, over the {run.profile.deadline:.0f} s budget"
        )
    result.violations.extend(run.errors)
    result.violations.extend(f"unplanned exit: {e}" for e in run.unplanned_exits)
    result.violations.extend(log_alarms(stack))
    return result


def keep_failed_from_env() -> bool:
    """`CHAOS_KEEP_FAILED=1` keeps a failed run's database, vhost and sandbox books."""
    return os.environ.get("CHAOS_KEEP_FAILED", "") not in ("", "0")


def default_outage_mode() -> str:
    """`CHAOS_OUTAGES=scoped` keeps outages to this run's vhost and database."""
    mode = os.environ.get("CHAOS_OUTAGES", "real")
    if mode not in infra.OUTAGE_MODES:
        raise SystemExit(f"CHAOS_OUTAGES must be one of {infra.OUTAGE_MODES}, not {mode!r}")
    return mode
