"""(1) Intake rate: a pre-filled queue drained into PostgreSQL by the `intake` role.

The same messages are routed to two queues with the intake queue's arguments
(quorum, delivery limit, dead-letter exchange): the intake queue, drained by one
`refund-worker intake` process, and a twin drained by the anchor, a bare pika
consumer that parses and acks them (prefetch 1000, multiple acks). Both rates run
from the first delivery to the last message stored (intake: its last row's
`received_at`) or acked (anchor).
"""

from __future__ import annotations

import time
import uuid

import psycopg

from bench.common import (
    AMQP_URL,
    Context,
    Row,
    bare_consume,
    declare_twin_queue,
    delete_queue,
    fmt_rate,
    publish_refunds,
)
from bench.cpu import CpuMeter, ceiling_note, split_note, stack_roots
from bench.rss import RssSampler, role_pids
from devtools.devstack import Stack, StackConfig
from worker.adapters.rabbitmq import BusConnection, default_connection_name

TARGET = 0.6


def wait_first_delivery(bus: BusConnection, queue: str, count: int, timeout: float) -> float:
    """Wall-clock time at which the queue first held fewer than `count` ready messages."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if bus.message_count(queue) < count:
            return time.time()
        time.sleep(0.01)
    raise TimeoutError(f"nobody consumed {queue} within {timeout} s")


def wait_stored(database_url: str, count: int, timeout: float) -> float:
    """Wait until `count` refunds are stored; the wall-clock time of the last insert."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(database_url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute("SELECT count(*) FROM refunds").fetchone()
            if row is not None and row[0] >= count:
                last = conn.execute("SELECT max(received_at) FROM refunds").fetchone()
                assert last is not None
                return float(last[0].timestamp())
            time.sleep(0.2)
    raise TimeoutError(f"fewer than {count} refunds stored after {timeout} s")


def measure(ctx: Context) -> list[Row]:
    count = ctx.size(200_000, 20_000)
    config = StackConfig(workdir=ctx.workdir / "intake", roles={})
    tag = f"in{uuid.uuid4().hex[:6]}"
    with Stack(config) as stack:
        twin = f"{stack.topology.intake_queue}.bench-anchor"
        declare_twin_queue(stack.topology, twin)
        try:
            seconds = publish_refunds(stack.exchange, tag, count, refunds_per_trade=5)
            print(f"  published {count:,} messages (to 2 queues) in {seconds:.1f} s", flush=True)
            with CpuMeter(stack_roots(stack)) as anchor_cpu:
                anchor = bare_consume(twin, count)
            ctx.anchor_rate = anchor
            print(f"  anchor: bare pika consumer {anchor:,.0f} msg/s", flush=True)

            with (
                BusConnection(AMQP_URL, connection_name=default_connection_name("bench")) as bus,
                RssSampler(lambda: role_pids(stack)) as rss,
            ):
                stack.start_role("intake")
                first = wait_first_delivery(bus, stack.topology.intake_queue, count, 60)
                # From the first delivery: the role's start-up is not part of the drain.
                with CpuMeter(stack_roots(stack)) as cpu:
                    last = wait_stored(stack.database_url, count, 600)
            rate = count / (last - first)
            ctx.rss_peaks["(1) intake"] = dict(rss.peaks)
            print(f"  intake: {rate:,.0f} msg/s", flush=True)
        finally:
            delete_queue(twin)
    ratio = rate / anchor
    return [
        Row(
            measure=f"(1) intake: {count:,} queued refund.requested into PostgreSQL",
            figure=fmt_rate(rate, " msg/s"),
            anchor=f"bare pika consumer {fmt_rate(anchor, ' msg/s')}",
            ratio=ratio,
            target=f">= {TARGET} x anchor",
            met=ratio >= TARGET,
            note=(
                f"intake: {split_note(cpu, count, 'message')}; "
                f"{ceiling_note(cpu, count, anchor, TARGET, unit='message', single='intake')}"
                f"; bare consumer (its pika process is `bench`): "
                f"{split_note(anchor_cpu, count, 'message')}"
            ),
        )
    ]
