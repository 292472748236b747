"""The sandbox gateway's own speed: 1000-item batch submissions per second.

Runs the sandbox's benchmark (`bench/sandbox_bench.py`, one scenario: MD5/UTF-8,
four clients, requests signed beforehand) and compares its capacity, in refunds/s,
with the end-to-end rate of (2): a ratio well above 1 says the emulated gateway
is not what limits the pipeline's figure.
"""

from __future__ import annotations

from bench.common import Context, Row

CLIENTS = 4


def measure(ctx: Context) -> list[Row]:
    try:
        from bench import sandbox_bench  # type: ignore[attr-defined, unused-ignore]
    except ImportError as exc:
        return [
            Row(
                measure="sandbox gateway: 1000-item batch submissions",
                figure=f"not available ({exc})",
                anchor="-",
                ratio=None,
                target="-",
                met=None,
            )
        ]
    batches = ctx.size(300, 40)
    result = sandbox_bench.run_scenario(
        f"MD5/utf-8 x{CLIENTS}",
        clients=CLIENTS,
        batches=batches,
        items=1000,
        sign_type="MD5",
        charset="utf-8",
    )
    per_second = result.batches / result.submit_seconds
    items_per_second = per_second * result.items
    e2e = ctx.e2e_rate
    print(f"  sandbox: {per_second:.0f} batches/s ({items_per_second:,.0f} refunds/s)", flush=True)
    return [
        Row(
            measure=f"sandbox gateway: {batches} batches of 1000 refunds, {CLIENTS} clients",
            figure=f"{per_second:.1f} batches/s = {items_per_second:,.0f} refunds/s",
            anchor="-" if e2e is None else f"end to end (2) {e2e:,.0f} refunds/s",
            ratio=None if e2e is None else items_per_second / e2e,
            target="> 1 (not the limit of (2))",
            met=None if e2e is None else items_per_second > e2e,
            note=f"{result.refused} refused; notifications drained {result.drain_seconds:.1f} s "
            "after the last answer",
        )
    ]
