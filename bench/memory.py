"""(5) Memory: peak RSS of each role during (1) and (2), and intake's RSS over a deep backlog.

A role's RSS is its process plus descendants (gunicorn's master and workers
together), sampled every 0.25 s from /proc while the other measurements ran. The
anchor is the same role's RSS in the first sample, before the load reached it.

Then 1,000,000 refund.requested messages are queued and `refund-worker intake`
works through the start of that backlog for a minute. Intake holds at most a
prefetch of messages, so its RSS should not depend on the depth of the queue:
the row compares the median RSS of the first and the last third of the window.
"""

from __future__ import annotations

import statistics
import time
import uuid

from bench.common import Context, Row, publish_refunds
from bench.rss import RssSampler, role_pids
from devtools.devstack import Stack, StackConfig

LIMIT_MB = 150.0
FLAT = 1.10


def _peak_rows(ctx: Context) -> list[Row]:
    rows = []
    for phase, peaks in ctx.rss_peaks.items():
        roles = {name: mb for name, mb in peaks.items() if name != "sandbox"}
        if not roles:
            continue
        worst = max(roles.values())
        sandbox = peaks.get("sandbox")
        rows.append(
            Row(
                measure=f"(5) peak RSS per role during {phase}",
                figure=", ".join(f"{name} {mb:.0f} MB" for name, mb in sorted(roles.items())),
                anchor="-",
                ratio=worst / LIMIT_MB,
                target=f"<= {LIMIT_MB:.0f} MB each",
                met=worst <= LIMIT_MB,
                note=(
                    ""
                    if sandbox is None
                    else f"the sandbox gateway (not a role: it keeps its whole ledger in "
                    f"memory) peaked at {sandbox:.0f} MB"
                ),
            )
        )
    return rows


def _backlog(ctx: Context) -> Row:
    count = ctx.size(1_000_000, 100_000)
    window = ctx.size(60, 15)
    tag = f"bl{uuid.uuid4().hex[:6]}"
    with Stack(StackConfig(workdir=ctx.workdir / "backlog", roles={})) as stack:
        seconds = publish_refunds(stack.exchange, tag, count, refunds_per_trade=5)
        print(f"  backlog of {count:,} queued in {seconds:.1f} s", flush=True)
        with RssSampler(lambda: role_pids(stack), interval=0.5) as rss:
            stack.start_role("intake")
            time.sleep(window)
        stored = stack.query("SELECT count(*) FROM refunds")[0][0]
    series = [mb for t, mb in rss.series.get("intake", []) if t >= 3.0]
    if len(series) < 6:
        raise RuntimeError("too few RSS samples of intake")
    third = len(series) // 3
    early, late = statistics.median(series[:third]), statistics.median(series[-third:])
    growth = late / early
    print(f"  intake RSS {early:.0f} MB -> {late:.0f} MB over {stored:,} stored", flush=True)
    return Row(
        measure=f"(5) intake RSS working through a {count:,}-message backlog for {window} s",
        figure=f"{early:.0f} MB -> {late:.0f} MB (peak {max(series):.0f} MB)",
        anchor=f"first third of the window {early:.0f} MB",
        ratio=growth,
        target=f"flat: last / first third <= {FLAT:.2f}",
        met=growth <= FLAT and max(series) <= LIMIT_MB,
        note=f"{stored:,} refunds stored during the window; the rest stayed queued",
    )


def measure(ctx: Context) -> list[Row]:
    rows = _peak_rows(ctx)
    rows.append(_backlog(ctx))
    return rows
