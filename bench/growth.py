"""(6) Growth: the end-to-end row of (2) again, with 5,000,000 completed refunds in the ledger.

A worker that has run for a year holds its history: the refunds it completed, their
batches and batch items, all within `LEDGER_RETENTION_DAYS` (spread over the last
300 days, so the archive sweep has nothing to move). The row proves the hot paths
(intake's duplicate check and trade tally, the packer, the sweeps, the status
updates) do not slow down with that history: the rate must stay at least 0.8x the
empty ledger's rate of (2), measured in the same run.

The ledger is written once per run, before the roles start, by set-based statements
in one transaction: the secondary indexes are dropped and built again afterwards
from their own definitions, and foreign-key triggers are off for the load (the rows
are consistent by construction: every batch item names a refund and a batch it
writes). 5,000 batches of 1,000 refunds; each of 1,000,000 trades has five refunds in
five batches, as a real ledger of partial refunds would.
"""

from __future__ import annotations

import time

import psycopg

from bench.common import Context, Row, fmt_rate
from bench.end_to_end import Run, drive, stack_config
from devtools.devstack import ROLES, Stack

TARGET = 0.8
BATCH_SIZE = 1000
# A trade prefix of its own: the ledger's trades never meet the traffic's.
LEDGER_TRADE_PREFIX = "2026400000"

_INDEXES = """
SELECT i.indexname, i.indexdef FROM pg_indexes AS i
WHERE i.schemaname = current_schema() AND i.tablename IN ('refunds', 'batch_items')
  AND NOT EXISTS (SELECT 1 FROM pg_constraint AS c WHERE c.conname = i.indexname)
"""

# Batch b completed 300 days ago plus b x `step`: all of them inside the retention.
_BATCHES = """
INSERT INTO batches (batch_no, batch_day, state, item_count, attempts, partner, created_at,
                     updated_at, accepted_at, completed_at, last_attempt_at)
SELECT to_char(t, 'YYYYMMDD') || lpad(b::text, 12, '0'), t::date, 'completed', %(size)s, 1,
       %(partner)s, t, t, t, t, t
FROM generate_series(0, %(batches)s - 1) AS b,
     LATERAL (SELECT now() - interval '300 days' + b * %(step)s::interval AS t) AS s
"""

_REFUNDS = """
INSERT INTO refunds (refund_id, event_id, trade_no, amount, reason, order_id, requested_at,
                     content_hash, state, code, batch_no, batch_attempts, received_at,
                     updated_at, completed_at, result_source, partner)
SELECT 'ledger-' || i, 'ledger-event-' || i,
       %(prefix)s || lpad(((i / (%(size)s * 5)) * %(size)s + i %% %(size)s)::text, 14, '0'),
       1 + i %% 50, 'return', 'order-ledger-' || i, t, md5(i::text), 'succeeded', 'SUCCESS',
       to_char(t, 'YYYYMMDD') || lpad((i / %(size)s)::text, 12, '0'), 1, t, t, t, 'notify',
       %(partner)s
FROM generate_series(0, %(refunds)s - 1) AS i,
     LATERAL (SELECT now() - interval '300 days' + (i / %(size)s) * %(step)s::interval AS t) AS s
"""

_ITEMS = """
INSERT INTO batch_items (batch_no, refund_id, trade_no, amount, reason_sent, position)
SELECT batch_no, refund_id, trade_no, amount, reason,
       (substr(refund_id, 8)::bigint %% %(size)s)::int + 1
FROM refunds WHERE refund_id LIKE 'ledger-%%'
"""


def build_ledger(database_url: str, refunds: int, partner: str) -> float:
    """Write `refunds` completed refunds with their batches and items; returns seconds."""
    started = time.perf_counter()
    batches = max(1, refunds // BATCH_SIZE)
    params = {
        "size": BATCH_SIZE,
        "batches": batches,
        "refunds": batches * BATCH_SIZE,
        "partner": partner,
        "prefix": LEDGER_TRADE_PREFIX,
        "step": f"{300 * 24 * 60 // batches} minutes",
    }
    with psycopg.connect(database_url) as conn:
        conn.execute("SET LOCAL session_replication_role = replica")
        conn.execute("SET LOCAL maintenance_work_mem = '512MB'")
        indexes = conn.execute(_INDEXES).fetchall()
        for name, _definition in indexes:
            conn.execute(f'DROP INDEX "{name}"')
        for statement in (_BATCHES, _REFUNDS, _ITEMS):
            conn.execute(statement, params)
        for _name, definition in indexes:
            conn.execute(definition)
        conn.commit()
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE refunds, batches, batch_items")
    return time.perf_counter() - started


def measure(ctx: Context) -> list[Row]:
    ledger = ctx.size(5_000_000, 200_000)
    count = ctx.size(100_000, 10_000)
    config = stack_config(ctx, "growth", roles={})
    with Stack(config) as stack:
        built = build_ledger(stack.database_url, ledger, stack.default_partner)
        print(f"  growth: {ledger:,} completed refunds written in {built:.0f} s", flush=True)
        for role in ROLES:
            stack.start_role(role)
        run = drive(ctx, stack, count)
    empty = ctx.e2e_rate if ctx.e2e_rate is not None else _empty_ledger_rate(ctx, count)
    ratio = run.rate / empty
    print(f"  growth: {run.rate:,.0f} refunds/s ({run.seconds:.1f} s)", flush=True)
    return [
        Row(
            measure=(
                f"(6) growth: (2) again with {ledger:,} completed refunds "
                f"({ledger // BATCH_SIZE:,} batches) already in the ledger"
            ),
            figure=f"{fmt_rate(run.rate, ' refunds/s')} ({run.seconds:.1f} s)",
            anchor=f"empty ledger (2) {fmt_rate(empty, ' refunds/s')}",
            ratio=ratio,
            target=f">= {TARGET} x anchor",
            met=ratio >= TARGET,
            note=f"ledger written in {built:.0f} s; {run.note()}",
        )
    ]


def _empty_ledger_rate(ctx: Context, count: int) -> float:
    """(2)'s rate, measured now when (2) did not run."""
    with Stack(stack_config(ctx, "growth-empty")) as stack:
        run: Run = drive(ctx, stack, count)
    ctx.e2e_rate = run.rate
    return run.rate
