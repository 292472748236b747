"""What the operator console's pages read: the overview, the search box, per-minute series.

Read-only statements over the ledger, returning frozen records. The histories of a refund,
a batch and a trade (one chronological timeline each) live in `console_history` and are
re-exported here, so the console imports one module.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from worker.adapters.postgres.batches import OPEN_BATCH_STATES
from worker.adapters.postgres.console_history import (
    MAX_KEY_LENGTH,
    batch_history,
    refund_history,
    trade_history,
    usable_key,
)
from worker.adapters.postgres.console_records import (
    BatchHistory,
    BatchItemRow,
    BatchSummary,
    FlaggedBatch,
    Halt,
    Hit,
    Overview,
    RefundHistory,
    StateCount,
    TimelineEntry,
    TradeHistory,
    TradeRefund,
)
from worker.adapters.postgres.pool import Connection
from worker.domain.states import CLOSED_BATCH_FLAGS

__all__ = [
    "MAX_FIND_LENGTH",
    "MAX_SERIES_MINUTES",
    "OPEN_BATCH_STATES",
    "OPEN_REFUND_STATES",
    "BatchHistory",
    "BatchItemRow",
    "BatchSummary",
    "FlaggedBatch",
    "Halt",
    "Hit",
    "Overview",
    "RefundHistory",
    "StateCount",
    "TimelineEntry",
    "TradeHistory",
    "TradeRefund",
    "backlog_per_minute",
    "batch_history",
    "completed_per_minute",
    "find",
    "overview",
    "refund_history",
    "trade_history",
]

# Refund and batch states in which work is still waiting (the partial indexes
# refunds_open_idx and batches_open_idx name the same lists).
OPEN_REFUND_STATES = ("pending", "batched", "submitted")
_UNAPPLIED = ("pending", "apply_failed", "unknown_batch")
_HALT_PREFIX = "submission_halted:"
_FLAGGED_LIMIT = 500

# Longer search text is not an id of any kind the ledger stores.
MAX_FIND_LENGTH = MAX_KEY_LENGTH
# The longest series a chart may ask for: a week of minutes.
MAX_SERIES_MINUTES = 7 * 24 * 60


def _counts(rows: list[tuple[Any, ...]]) -> list[StateCount]:
    return [
        StateCount(str(m), str(s), int(n), None if age is None else float(age))
        for m, s, n, age in rows
    ]


def overview(conn: Connection) -> Overview:
    """Refunds and batches by merchant and state, flagged batches, halts, unapplied
    notifications and the outbox: the console's first page."""
    refunds = conn.execute(
        "SELECT partner, state, count(*),"
        " CASE WHEN state = ANY(%s)"
        "  THEN extract(epoch FROM clock_timestamp() - min(received_at))::float8 END"
        " FROM refunds GROUP BY partner, state ORDER BY partner, state",
        (list(OPEN_REFUND_STATES),),
    ).fetchall()
    batches = conn.execute(
        "SELECT partner, state, count(*),"
        " CASE WHEN state = ANY(%s)"
        "  THEN extract(epoch FROM clock_timestamp() - min(created_at))::float8 END"
        " FROM batches GROUP BY partner, state ORDER BY partner, state",
        (list(OPEN_BATCH_STATES),),
    ).fetchall()
    # The same batches as the flagged gauge (`status.ledger_gauges`) counts.
    flagged = conn.execute(
        "SELECT batch_no, partner, state, operator_flag, flagged_at, last_error FROM batches"
        " WHERE operator_flag IS NOT NULL"
        " AND (state NOT IN ('completed', 'refused', 'abandoned', 'released')"
        "      OR operator_flag = ANY(%s))"
        " ORDER BY flagged_at NULLS LAST, batch_no LIMIT %s",
        (sorted(CLOSED_BATCH_FLAGS), _FLAGGED_LIMIT),
    ).fetchall()
    halts = conn.execute(
        "SELECT substr(name, length(%s) + 1), value, set_at FROM control"
        " WHERE starts_with(name, %s) ORDER BY name",
        (_HALT_PREFIX, _HALT_PREFIX),
    ).fetchall()
    unapplied = conn.execute(
        "SELECT '', outcome, count(*),"
        " extract(epoch FROM clock_timestamp() - min(stored_at))::float8"
        " FROM notifications WHERE outcome = ANY(%s) GROUP BY outcome ORDER BY outcome",
        (list(_UNAPPLIED),),
    ).fetchall()
    row = conn.execute("SELECT count(*) FROM outbox").fetchone()
    return Overview(
        refunds=_counts(refunds),
        batches=_counts(batches),
        flagged=[
            FlaggedBatch(str(b), str(m), str(s), str(f), at, err) for b, m, s, f, at, err in flagged
        ],
        halts=[Halt(str(m), str(v), at) for m, v, at in halts],
        unapplied_notifications=_counts(unapplied),
        outbox=int(row[0]) if row else 0,
    )


def find(conn: Connection, text: str) -> list[Hit]:
    """What `text` names exactly: a refund_id, a batch_no, a trade_no (refunds of this
    worker or refunds the gateway reported elsewhere). Empty, overlong or unprintable
    text (a NUL, a line break) finds nothing."""
    key = usable_key(text)
    if key is None:
        return []
    hits: list[Hit] = []
    refund = conn.execute(
        "SELECT state, amount, trade_no, partner, code FROM refunds WHERE refund_id = %s",
        (key,),
    ).fetchone()
    if refund is not None:
        state, amount, trade_no, partner, code = refund
        code_text = f" {code}" if code else ""
        hits.append(
            Hit("refund", key, f"{state}{code_text}, {amount} on trade {trade_no}, {partner}")
        )
    batch = conn.execute(
        "SELECT state, item_count, partner, attempts FROM batches WHERE batch_no = %s", (key,)
    ).fetchone()
    if batch is not None:
        state, items, partner, attempts = batch
        hits.append(Hit("batch", key, f"{state}, {items} items, {attempts} attempts, {partner}"))
    trade = conn.execute(
        "SELECT (SELECT count(*) FROM refunds WHERE trade_no = %(t)s),"
        " (SELECT coalesce(sum(amount), 0) FROM refunds WHERE trade_no = %(t)s"
        "   AND state NOT IN ('rejected', 'failed')),"
        " (SELECT count(*) FROM trade_gateway_refunds WHERE trade_no = %(t)s)",
        {"t": key},
    ).fetchone()
    if trade is not None and (trade[0] or trade[2]):
        ours, total, elsewhere = int(trade[0]), Decimal(trade[1]), int(trade[2])
        summary = f"{ours} refunds here, {total} not failed"
        if elsewhere:
            summary += f", {elsewhere} made elsewhere"
        hits.append(Hit("trade", key, summary))
    return hits


# --- per-minute series ---------------------------------------------------------------


def _window(minutes: int, now: datetime) -> tuple[datetime, datetime]:
    """(start of the first minute, end of the last): the last is the minute `now` is in."""
    if not isinstance(minutes, int) or not 1 <= minutes <= MAX_SERIES_MINUTES:
        raise ValueError(f"minutes must be between 1 and {MAX_SERIES_MINUTES}, not {minutes!r}")
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must carry its time zone")
    end = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    return end - timedelta(minutes=minutes), end


_MINUTES = (
    "SELECT g AS minute, (row_number() OVER (ORDER BY g) - 1)::int AS k"
    " FROM generate_series(%(start)s::timestamptz, %(end)s::timestamptz - interval '1 minute',"
    " interval '1 minute') AS g"
)
# The minute (0 = the first of the window) a moment falls in.
_BUCKET = "floor(extract(epoch FROM ({} - %(start)s::timestamptz)) / 60)::int"


def _series(rows: list[tuple[Any, ...]]) -> list[tuple[datetime, int]]:
    return [(minute, int(count)) for minute, count in rows]


_RECEIVED = _BUCKET.format("received_at")
_COMPLETED = _BUCKET.format("completed_at")

# Completions by minute: one range scan of refunds_completed_idx.
_COMPLETED_SERIES = (
    f"WITH minutes AS ({_MINUTES}),"
    f" done AS (SELECT {_COMPLETED} AS k, count(*) AS n FROM refunds"
    "  WHERE completed_at >= %(start)s AND completed_at < %(end)s GROUP BY 1)"
    " SELECT m.minute, coalesce(d.n, 0) FROM minutes m LEFT JOIN done d USING (k)"
    " ORDER BY m.k"
)

# The backlog by minute (see `backlog_per_minute`): refunds_open_idx and
# refunds_completed_idx, each over the window only, plus one count of the older backlog.
_BACKLOG_SERIES = (
    f"WITH minutes AS ({_MINUTES}),"
    " steady AS (SELECT count(*) AS n FROM refunds"
    "  WHERE state IN ('pending', 'batched', 'submitted') AND received_at < %(start)s),"
    " moving AS ("
    f"  SELECT greatest({_RECEIVED}, 0) AS rk, %(n)s AS ck FROM refunds"
    "   WHERE state IN ('pending', 'batched', 'submitted')"
    "   AND received_at >= %(start)s AND received_at < %(end)s"
    "  UNION ALL"
    f"  SELECT greatest({_RECEIVED}, 0),"
    f"   CASE WHEN completed_at >= %(end)s THEN %(n)s ELSE {_COMPLETED} END"
    "   FROM refunds WHERE completed_at >= %(start)s AND received_at < %(end)s),"
    " deltas AS ("
    "  SELECT k, sum(d) AS d FROM ("
    "   SELECT rk AS k, 1 AS d FROM moving"
    "   UNION ALL SELECT greatest(ck, rk), -1 FROM moving WHERE greatest(ck, rk) < %(n)s"
    "  ) AS e GROUP BY k)"
    " SELECT m.minute,"
    "  (SELECT n FROM steady) + sum(coalesce(d.d, 0)) OVER (ORDER BY m.k)"
    " FROM minutes m LEFT JOIN deltas d USING (k) ORDER BY m.k"
)


def _series_params(minutes: int, now: datetime) -> dict[str, Any]:
    start, end = _window(minutes, now)
    return {"start": start, "end": end, "n": minutes}


def completed_per_minute(
    conn: Connection, *, minutes: int, now: datetime
) -> list[tuple[datetime, int]]:
    """For each of the last `minutes` minutes (the one `now` is in last, zeros included),
    its start and how many refunds were completed in it."""
    return _series(conn.execute(_COMPLETED_SERIES, _series_params(minutes, now)).fetchall())


def backlog_per_minute(
    conn: Connection, *, minutes: int, now: datetime
) -> list[tuple[datetime, int]]:
    """For each of the last `minutes` minutes (zeros included), its start and how many
    refunds were received and not completed at its end.

    A refund counts at the end of minute k when it was received in a minute <= k and
    completed in a minute > k (or not at all). Those open over the whole window are one
    count; each of the others (open ones received in the window, and those completed from
    the window's start on) adds +1 at its receipt's minute (the first minute when received
    before the window) and -1 at its completion's, summed up minute by minute.
    """
    return _series(conn.execute(_BACKLOG_SERIES, _series_params(minutes, now)).fetchall())
