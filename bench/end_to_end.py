"""(2) End to end: refunds from the first publish to the last refund.completed on the bus.

Every role runs as its own process (one replica each, as `refund-worker all` would
lay them out) against the sandbox gateway answering and notifying with no delay
(`--process-delay 0`). A consumer on the bus (prefetch 1000, multiple acks) stamps
each refund.completed as it arrives. The anchor is the bare consumer's rate from
(1), measured again here when (1) did not run.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from bench.common import (
    Context,
    Observer,
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
from sandbox.client import SandboxClient

TARGET = 0.2
REFUNDS_PER_TRADE = 5


def anchor_rate(ctx: Context) -> float:
    """The bare consumer's rate from (1), or measured now on 100,000 messages."""
    if ctx.anchor_rate is not None:
        return ctx.anchor_rate
    count = ctx.size(100_000, 20_000)
    with Stack(StackConfig(workdir=ctx.workdir / "anchor", roles={})) as stack:
        twin = f"{stack.topology.intake_queue}.bench-anchor"
        declare_twin_queue(stack.topology, twin)
        try:
            publish_refunds(stack.exchange, f"an{uuid.uuid4().hex[:6]}", count, refunds_per_trade=5)
            ctx.anchor_rate = bare_consume(twin, count)
        finally:
            delete_queue(twin)
    return ctx.anchor_rate


@dataclass
class Run:
    """One end-to-end pass through a running stack."""

    count: int
    seconds: float
    published: float
    duplicates: int
    summary: dict[str, Any]
    cpu: CpuMeter
    rss_peaks: dict[str, float]

    @property
    def rate(self) -> float:
        return self.count / self.seconds

    def note(self) -> str:
        paid_once = not self.summary["double_executed"] and not self.summary["over_refunded"]
        return (
            f"publishing took {self.published:.1f} s; {self.duplicates} duplicate "
            f"refund.completed; sandbox executed {self.summary['refunds_executed']:,} refunds "
            f"in {self.summary['batches_accepted']:,} batches, "
            + ("none twice" if paid_once else "SOME TWICE OR OVER THE TRADE AMOUNT")
            + "; "
            + split_note(self.cpu, self.count)
        )


def stack_config(ctx: Context, name: str, **overrides: Any) -> StackConfig:
    """Every role once, the sandbox answering and notifying with no delay."""
    return StackConfig(
        workdir=ctx.workdir / name, sandbox_args=["--process-delay", "0"], **overrides
    )


def drive(ctx: Context, stack: Stack, count: int) -> Run:
    """Publish `count` refunds into a running stack and wait for every refund.completed."""
    tag = f"e2e{uuid.uuid4().hex[:6]}"
    observer = Observer(stack.observer_queue).start()
    expected = {f"{tag}-{i}" for i in range(count)}
    cpu = CpuMeter(stack_roots(stack))
    with RssSampler(lambda: role_pids(stack)) as rss, cpu:
        started = time.time()
        publish_refunds(stack.exchange, tag, count, refunds_per_trade=REFUNDS_PER_TRADE)
        published = time.time() - started
        done = observer.wait(expected, timeout=ctx.size(900, 240))
    observer.stop()
    if not done:
        missing = len(expected - observer.arrivals.keys())
        raise TimeoutError(f"{missing:,} of {count:,} refunds never completed")
    finished = max(observer.arrivals[r] for r in expected)
    summary = SandboxClient(stack.sandbox_url).summary()
    return Run(
        count, finished - started, published, observer.duplicates, summary, cpu, dict(rss.peaks)
    )


def measure(ctx: Context) -> list[Row]:
    anchor = anchor_rate(ctx)
    count = ctx.size(100_000, 10_000)
    with Stack(stack_config(ctx, "e2e")) as stack:
        run = drive(ctx, stack, count)
    ctx.rss_peaks["(2) end to end"] = run.rss_peaks
    ctx.e2e_rate = run.rate
    ratio = run.rate / anchor
    print(f"  end to end: {run.rate:,.0f} refunds/s ({run.seconds:.1f} s)", flush=True)
    return [
        Row(
            measure=(
                f"(2) end to end: {count:,} refunds over {count // REFUNDS_PER_TRADE:,} trades, "
                "first publish to last refund.completed"
            ),
            figure=f"{fmt_rate(run.rate, ' refunds/s')} ({run.seconds:.1f} s)",
            anchor=f"bare pika consumer {fmt_rate(anchor, ' msg/s')}",
            ratio=ratio,
            target=f">= {TARGET} x anchor",
            met=ratio >= TARGET,
            note=f"{run.note()}; {ceiling_note(run.cpu, run.count, anchor, TARGET)}",
        )
    ]
