"""(8) Replicas: intake, submission and relay with one replica, then with two.

Each stage runs alone on a backlog the stage before it left, so its rate is its own:

1. intake drains N queued refund.requested into the ledger (first delivery to last row);
2. the scheduler cuts the stored refunds into batches with no worker running; then the
   worker replicas submit them (the batches' `accepted_at`), while the notify receiver
   stores the notifications that follow;
3. once every refund is completed and its `refund.completed` waits in the outbox, the
   relay replicas publish them (arrivals at a consumer on the bus).

Each rate is taken over the middle 80% of its stage (`middle_rate`), so a replica that
boots a moment later does not count as slowness.

Two replicas of a role should give at least 1.5x one; where they do not, the CPU split
of the two-replica stage (same notes) names the resource that stops them: on two cores
shared with PostgreSQL, RabbitMQ and the benchmark, the machine is usually full.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import psycopg

from bench.common import AMQP_URL, Context, Observer, Row, fmt_rate, publish_refunds, wait_until
from bench.cpu import CpuMeter, machine_cores, split_note, stack_roots
from bench.end_to_end import stack_config
from bench.intake import wait_first_delivery, wait_stored
from devtools.devstack import Stack
from worker.adapters.rabbitmq import BusConnection, default_connection_name

T = TypeVar("T")
TARGET = 1.5
STAGES = ("intake", "worker", "relay")
_OPEN_BATCHES = "('ready', 'submitting', 'retry', 'unknown')"


@dataclass
class Pass:
    replicas: int
    rates: dict[str, float] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    meters: dict[str, CpuMeter] = field(default_factory=dict)


def stopped_by(meter: CpuMeter, cores: int | None = None) -> str:
    """What a second replica ran into, read from the two-replica stage's CPU split."""
    cores = machine_cores(cores)
    busy = meter.machine_busy / meter.wall if meter.wall else 0.0
    by_role: dict[str, float] = {}
    for name, seconds in meter.seconds.items():  # worker and worker-1 are one role
        base, _, index = name.rpartition("-")
        role = base if index.isdigit() and base else name
        by_role[role] = by_role.get(role, 0.0) + seconds
    top = max(by_role.items(), key=lambda kv: kv[1], default=("nothing", 0.0))
    share = top[1] / sum(by_role.values()) if sum(by_role.values()) else 0.0
    where = "CPU" if busy >= 0.85 * cores else "not CPU"
    return (
        f"stopped by {where}: {busy:.1f} of {cores} cores busy, the largest share "
        f"{top[0]} ({share:.0%})"
    )


def middle_rate(stamps: list[float], weights: list[int] | None = None) -> float:
    """Units per second over the middle 80% of a stage (its 10th to 90th percentile).

    A second replica boots a moment after the first; the edges of a stage say more about
    start-up than about the rate, so they are left out.
    """
    pairs = sorted(zip(stamps, weights or [1] * len(stamps), strict=True))
    lo, hi = len(pairs) // 10, len(pairs) - 1 - len(pairs) // 10
    if hi <= lo:
        raise ValueError("too few events to measure a rate")
    units = sum(w for _, w in pairs[lo + 1 : hi + 1])
    return units / (pairs[hi][0] - pairs[lo][0])


def _stamps(database_url: str, sql: str) -> list[tuple[float, int]]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        return [(float(r[0]), int(r[1])) for r in conn.execute(sql).fetchall()]


def _scalar(database_url: str, sql: str) -> object:
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(sql).fetchone()
    return row[0] if row else None


def _until(database_url: str, sql: str, timeout: float, what: str) -> None:
    if not wait_until(lambda: bool(_scalar(database_url, sql)), timeout, poll=0.2):
        raise TimeoutError(f"{what} within {timeout:.0f} s")


def _start(stack: Stack, role: str, replicas: int) -> None:
    for index in range(replicas):
        stack.start_role(role, index)


def _metered(stack: Stack, wait: Callable[[], T]) -> tuple[T, CpuMeter]:
    with CpuMeter(stack_roots(stack)) as meter:
        result = wait()
    return result, meter


def one_pass(ctx: Context, replicas: int, count: int) -> Pass:
    result = Pass(replicas)
    tag = f"sc{uuid.uuid4().hex[:6]}"
    with Stack(stack_config(ctx, f"scale-{replicas}", roles={})) as stack:
        url = stack.database_url
        publish_refunds(stack.exchange, tag, count, refunds_per_trade=5)
        # 1. intake
        with BusConnection(AMQP_URL, connection_name=default_connection_name("bench")) as bus:
            _start(stack, "intake", replicas)
            wait_first_delivery(bus, stack.topology.intake_queue, count, 60)
            _, cpu = _metered(stack, lambda: wait_stored(url, count, 600))
        stored = _stamps(url, "SELECT extract(epoch FROM received_at), 1 FROM refunds")
        result.rates["intake"] = middle_rate([t for t, _ in stored])
        result.notes["intake"] = split_note(cpu, count)
        result.meters["intake"] = cpu
        # 2. submission: batches cut with no worker, then the workers send them.
        _start(stack, "scheduler", 1)
        stack.start_role("notify-server")
        _until(
            url,
            "SELECT count(*) = 0 FROM refunds WHERE state = 'pending'",
            300,
            "the scheduler did not cut every refund into a batch",
        )
        time.sleep(1.0)  # the last batches reach the job queue
        _start(stack, "worker", replicas)
        _, cpu = _metered(
            stack,
            lambda: _until(
                url,
                f"SELECT count(*) = 0 FROM batches WHERE state IN {_OPEN_BATCHES}",
                600,
                "the workers did not submit every batch",
            ),
        )
        accepted = _stamps(
            url,
            "SELECT extract(epoch FROM coalesce(accepted_at, completed_at)), item_count"
            " FROM batches",
        )
        result.rates["worker"] = middle_rate([t for t, _ in accepted], [n for _, n in accepted])
        result.notes["worker"] = split_note(cpu, count)
        result.meters["worker"] = cpu
        # 3. relay: every refund.completed waits in the outbox first.
        _until(
            url,
            f"SELECT count(*) >= {count} FROM outbox",
            600,
            "the notifications did not complete every refund",
        )
        observer = Observer(stack.observer_queue).start()
        expected = {f"{tag}-{i}" for i in range(count)}
        _start(stack, "relay", replicas)
        done, cpu = _metered(stack, lambda: observer.wait(expected, timeout=600))
        observer.stop()
        if not done:
            raise TimeoutError("the relays did not publish every refund.completed")
        result.rates["relay"] = middle_rate([observer.arrivals[r] for r in expected])
        result.notes["relay"] = split_note(cpu, count)
        result.meters["relay"] = cpu
    return result


def measure(ctx: Context) -> list[Row]:
    count = ctx.size(100_000, 10_000)
    one = one_pass(ctx, 1, count)
    two = one_pass(ctx, 2, count)
    rows = []
    for stage in STAGES:
        ratio = two.rates[stage] / one.rates[stage]
        print(
            f"  {stage}: 1 replica {one.rates[stage]:,.0f}/s, 2 replicas "
            f"{two.rates[stage]:,.0f}/s ({ratio:.2f}x)",
            flush=True,
        )
        rows.append(
            Row(
                measure=f"(8) replicas: {stage}, two against one, {count:,} refunds",
                figure=f"2 replicas {fmt_rate(two.rates[stage], ' refunds/s')}",
                anchor=f"1 replica {fmt_rate(one.rates[stage], ' refunds/s')}",
                ratio=ratio,
                target=f">= {TARGET} x anchor, or the resource named",
                met=ratio >= TARGET,
                note=(
                    ("" if ratio >= TARGET else stopped_by(two.meters[stage]) + "; ")
                    + f"1 replica: {one.notes[stage]}; 2 replicas: {two.notes[stage]}"
                ),
            )
        )
    return rows
