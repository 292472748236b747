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


def measure(ctx: Context) -> list[Row]:
    anchor = anchor_rate(ctx)
    count = ctx.size(100_000, 10_000)
    trades = count // REFUNDS_PER_TRADE
    tag = f"e2e{uuid.uuid4().hex[:6]}"
    config = StackConfig(workdir=ctx.workdir / "e2e", sandbox_args=["--process-delay", "0"])
    with Stack(config) as stack:
        observer = Observer(stack.observer_queue).start()
        expected = {f"{tag}-{i}" for i in range(count)}
        with RssSampler(lambda: role_pids(stack)) as rss:
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
    ctx.rss_peaks["(2) end to end"] = dict(rss.peaks)
    seconds = finished - started
    rate = count / seconds
    ctx.e2e_rate = rate
    ratio = rate / anchor
    paid_once = not summary["double_executed"] and not summary["over_refunded"]
    print(f"  end to end: {rate:,.0f} refunds/s ({seconds:.1f} s)", flush=True)
    return [
        Row(
            measure=(
                f"(2) end to end: {count:,} refunds over {trades:,} trades, "
                "first publish to last refund.completed"
            ),
            figure=f"{fmt_rate(rate, ' refunds/s')} ({seconds:.1f} s)",
            anchor=f"bare pika consumer {fmt_rate(anchor, ' msg/s')}",
            ratio=ratio,
            target=f">= {TARGET} x anchor",
            met=ratio >= TARGET,
            note=(
                f"publishing took {published:.1f} s; {observer.duplicates} duplicate "
                f"refund.completed; sandbox executed {summary['refunds_executed']:,} refunds in "
                f"{summary['batches_accepted']:,} batches, "
                + ("none twice" if paid_once else "SOME TWICE OR OVER THE TRADE AMOUNT")
            ),
        )
    ]
