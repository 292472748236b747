"""Statements on `refunds`: intake, the per-trade tally, packing, results, releases."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal

from worker.adapters.postgres._sql import (
    _COMPLETION_COLUMNS,
    _TEXTS,
    _completion,
    _json_list,
    _money,
    _outcomes_json,
)
from worker.adapters.postgres.pool import Connection, lock_key
from worker.adapters.postgres.records import BatchMember, Completion, NewRefund, PendingRefund
from worker.contracts.json_text import compact
from worker.domain.rules import TradeTally


def existing_hashes(conn: Connection, refund_ids: Sequence[str]) -> dict[str, tuple[str, str]]:
    """refund_id -> (content_hash, partner) of those stored, archived ones too (migration
    0009: one statement, one snapshot, so a refund moving to the archive meanwhile is seen
    in exactly one of the two); read it after `lock_trades`."""
    ids = _json_list(refund_ids)
    rows = conn.execute(
        f"SELECT refund_id, content_hash, partner FROM refunds WHERE refund_id = ANY({_TEXTS})"
        " UNION ALL SELECT refund_id, content_hash, partner FROM refunds_archive"
        f" WHERE refund_id = ANY({_TEXTS})",
        (ids, ids),
    ).fetchall()
    return {str(r[0]): (str(r[1]), str(r[2])) for r in rows}


def lock_trades(conn: Connection, trade_nos: Iterable[str]) -> None:
    """Serialise intake per trade across replicas (transaction-scoped advisory locks).

    Take them before reading anything the rule checks depend on (`existing_hashes`,
    `trade_tallies`): under READ COMMITTED each later statement then sees what the
    replica that held the lock before committed.
    """
    keys = sorted({lock_key("trade", t) for t in trade_nos})
    if keys:
        conn.execute(
            "SELECT pg_advisory_xact_lock(k::bigint)"
            " FROM json_array_elements_text(%s::json) WITH ORDINALITY AS a(k, n) ORDER BY n",
            (_json_list(keys),),
        )


def trade_tallies(conn: Connection, trade_nos: Sequence[str]) -> dict[str, TradeTally]:
    """What counts against each trade's limits, with the trades locked.

    Every refund of this worker but rejected and failed ones, archived ones included
    (`refunds_archive`, migration 0009), plus the refunds the
    gateway reported for the trade under batch numbers this worker never used
    (`trade_gateway_refunds`: the merchant console, another system), which count
    toward the 99 refunds and the paid amount at Alipay too. The one place a
    trade's tally is computed.
    """
    trades = _json_list(set(trade_nos))
    rows = conn.execute(
        "SELECT trade_no, sum(n), coalesce(sum(total), 0) FROM ("
        " SELECT trade_no, count(*) AS n, sum(amount) AS total FROM refunds"
        f" WHERE trade_no = ANY({_TEXTS}) AND state NOT IN ('rejected', 'failed')"
        " GROUP BY trade_no"
        " UNION ALL SELECT trade_no, count(*), sum(amount) FROM refunds_archive"
        f" WHERE trade_no = ANY({_TEXTS}) AND state NOT IN ('rejected', 'failed')"
        " GROUP BY trade_no"
        " UNION ALL SELECT trade_no, count(*), sum(amount) FROM trade_gateway_refunds"
        f" WHERE trade_no = ANY({_TEXTS}) GROUP BY trade_no"
        ") AS t GROUP BY trade_no",
        (trades, trades, trades),
    ).fetchall()
    tallies = {t: TradeTally() for t in trade_nos}
    for trade_no, count, total in rows:
        tallies[str(trade_no)] = TradeTally(int(count), Decimal(total))
    return tallies


def insert_refunds(conn: Connection, refunds: Sequence[NewRefund]) -> set[str]:
    """Insert refunds that are not there yet; returns the refund_ids actually inserted.

    The rows travel as one JSON parameter expanded by `json_to_recordset`: `compact`
    (`worker/contracts/json_text.py`) is C, where adapting twelve arrays element by
    element is Python. Amounts go as
    decimal strings (exact), times as ISO 8601 with their offset.
    """
    if not refunds:
        return set()
    payload = compact(
        [
            {
                "refund_id": r.refund_id,
                "event_id": r.event_id,
                "trade_no": r.trade_no,
                "amount": str(r.amount),
                "reason": r.reason,
                "trade_amount": _money(r.trade_amount),
                "order_id": r.order_id,
                "metadata": r.metadata,
                "requested_at": None if r.requested_at is None else r.requested_at.isoformat(),
                "content_hash": r.content_hash,
                "state": r.state,
                "code": r.code,
                "partner": r.partner,
                "channel": r.channel,
                "out_trade_no": r.out_trade_no,
                "auth_no": r.auth_no,
                "out_request_no": r.out_request_no,
            }
            for r in refunds
        ]
    )
    rows = conn.execute(
        """
        INSERT INTO refunds (refund_id, event_id, trade_no, amount, reason, trade_amount,
                             order_id, metadata, requested_at, content_hash, state, code,
                             completed_at, partner, channel, out_trade_no, auth_no,
                             out_request_no, next_step, next_attempt_at)
        SELECT r.refund_id, r.event_id, r.trade_no, r.amount, r.reason, r.trade_amount,
               r.order_id, r.metadata, r.requested_at, r.content_hash, r.state, r.code,
               CASE WHEN r.state = 'rejected' THEN clock_timestamp() END, r.partner,
               r.channel, r.out_trade_no, r.auth_no, r.out_request_no,
               CASE WHEN r.channel <> 'batch' AND r.state = 'pending' THEN 'send' END,
               CASE WHEN r.channel <> 'batch' AND r.state = 'pending'
                    THEN clock_timestamp() END
        FROM json_to_recordset(%s::json)
             AS r(refund_id text, event_id text, trade_no text, amount numeric, reason text,
                  trade_amount numeric, order_id text, metadata jsonb,
                  requested_at timestamptz, content_hash text, state text, code text,
                  partner text, channel text, out_trade_no text, auth_no text,
                  out_request_no text)
        ON CONFLICT (refund_id) DO NOTHING
        RETURNING refund_id
        """,
        (payload,),
    ).fetchall()
    return {str(r[0]) for r in rows}


def completions_for(conn: Connection, refund_ids: Sequence[str]) -> list[Completion]:
    """Final refunds (with their event fields) among `refund_ids`."""
    if not refund_ids:
        return []
    rows = conn.execute(
        f"SELECT {_COMPLETION_COLUMNS} FROM refunds AS f WHERE f.refund_id = ANY(%s)"
        " AND f.state IN ('succeeded', 'failed', 'rejected')",
        (list(refund_ids),),
    ).fetchall()
    return [_completion(r) for r in rows]


# --- packing ----------------------------------------------------------------


def pending_refunds(
    conn: Connection, limit: int, partners: Sequence[str] | None = None
) -> list[PendingRefund]:
    """The oldest pending refunds of the batch channel, locked; only those of `partners`
    when given (a merchant not served any more must not fill the look-ahead of the ones
    that are). Refunds of the OpenAPI channels are never read here."""
    rows = conn.execute(
        "SELECT refund_id, trade_no, amount, reason, received_at, batch_attempts, partner"
        " FROM refunds WHERE state = 'pending' AND channel = 'batch'"
        " AND (%(partners)s::text[] IS NULL OR partner = ANY(%(partners)s::text[]))"
        " ORDER BY received_at, refund_id LIMIT %(limit)s FOR UPDATE SKIP LOCKED",
        {"partners": None if partners is None else list(partners), "limit": limit},
    ).fetchall()
    return [PendingRefund(*r) for r in rows]


# The statements that move a batch's refunds find them through refunds_batch_idx (or the
# primary key) and never through the partial indexes on `state` (refunds_pending_idx,
# refunds_open_idx): those hold every waiting refund, and a plan that scans one of them
# costs time in proportion to the backlog for each batch. The planner picks them when its
# statistics lag behind a burst (autovacuum analyzes a table at most once a minute), and a
# generic plan made while the table was small stays cached in the session. So their state
# conditions are written `(state = ...) IS TRUE`, which means the same in a WHERE clause but
# does not match a partial index's predicate, and they run unprepared.


def mark_submitted(conn: Connection, batch_no: str) -> None:
    conn.execute(
        "UPDATE refunds SET state = 'submitted', updated_at = clock_timestamp()"
        " WHERE batch_no = %s AND (state = 'batched') IS TRUE",
        (batch_no,),
        prepare=False,
    )


def return_to_pending(
    conn: Connection,
    batch_no: str,
    refund_ids: Sequence[str] | None = None,
    *,
    include_submitted: bool = False,
) -> list[str]:
    """Send refunds of `batch_no` back to pending; returns the refund_ids moved, sorted.

    The one statement that releases refunds from a batch: those of a batch the gateway
    certainly did not take (`batched` ones), or, with `include_submitted`, those the
    release rule or an operator proved it never took. `refund_ids` limits it to those
    refunds (all of the batch's when None). Callers decide *whether* (`worker/domain/
    policy.py`); this only carries it out.
    """
    states = ["batched", "submitted"] if include_submitted else ["batched"]
    rows = conn.execute(
        "UPDATE refunds SET state = 'pending', batch_no = NULL, updated_at = clock_timestamp()"
        " WHERE batch_no = %s AND (state = ANY(%s)) IS TRUE"
        " AND (%s::text[] IS NULL OR refund_id = ANY(%s::text[])) RETURNING refund_id",
        (
            batch_no,
            states,
            None if refund_ids is None else list(refund_ids),
            None if refund_ids is None else list(refund_ids),
        ),
        prepare=False,
    ).fetchall()
    return sorted(str(r[0]) for r in rows)


def undo_batch_attempt(conn: Connection, batch_no: str) -> None:
    """Do not count this batch against its refunds' batch limit (a refusal for its date)."""
    conn.execute(
        "UPDATE refunds SET batch_attempts = greatest(batch_attempts - 1, 0),"
        " updated_at = clock_timestamp()"
        " WHERE batch_no = %s AND (state = 'batched') IS TRUE",
        (batch_no,),
        prepare=False,
    )


def finish_refunds(
    conn: Connection,
    batch_no: str,
    outcomes: Sequence[tuple[str, str, str]],
    *,
    source: str,
) -> list[Completion]:
    """Move refunds of `batch_no` forward to (refund_id, state, code); only from open states.

    `source` records where the result came from (`submit`, `notify`, `query`). Returns the
    refunds this call completed (a refund already final is left alone).
    """
    if not outcomes:
        return []
    rows = conn.execute(
        f"""
        UPDATE refunds AS f
           SET state = o.state, code = o.code, completed_at = clock_timestamp(),
               result_source = %s, updated_at = clock_timestamp()
          FROM json_to_recordset(%s::json) AS o(refund_id text, state text, code text)
         WHERE f.refund_id = o.refund_id AND f.batch_no = %s
           AND (f.state IN ('batched', 'submitted')) IS TRUE
        RETURNING {_COMPLETION_COLUMNS}
        """,
        (source, _outcomes_json(outcomes), batch_no),
        prepare=False,
    ).fetchall()
    return [_completion(r) for r in rows]


def apply_results(
    conn: Connection,
    batch_no: str,
    outcomes: Sequence[tuple[str, str, str]],
    *,
    source: str,
) -> list[Completion]:
    """A batch's result in one statement: `mark_submitted`, then `finish_refunds`.

    `source` (`notify`, `query`) is recorded on the refunds it completes.

    Refunds of `batch_no` named in `outcomes` (refund_id, state, code) move from `batched`
    or `submitted` to their final state; the batch's other `batched` refunds move to
    `submitted`; nothing else changes. Each row is written once instead of twice when
    the notification comes before the submission's answer was settled. Returns the
    refunds this call completed.

    The outcomes travel as one JSON object keyed by refund_id, looked up per row: no join
    for the planner to turn into a loop over the 1000 outcomes for each of 1000 refunds.
    """
    reported = compact({refund_id: [state, code] for refund_id, state, code in outcomes})
    rows = conn.execute(
        f"""
        UPDATE refunds AS f
           SET state = coalesce(x.r -> f.refund_id ->> 0, 'submitted'),
               code = CASE WHEN x.r ? f.refund_id THEN x.r -> f.refund_id ->> 1 ELSE f.code END,
               completed_at = CASE WHEN x.r ? f.refund_id THEN clock_timestamp()
                                   ELSE f.completed_at END,
               result_source = CASE WHEN x.r ? f.refund_id THEN %s ELSE f.result_source END,
               updated_at = clock_timestamp()
          FROM (SELECT %s::jsonb AS r) AS x
         WHERE f.batch_no = %s
           AND ((f.state = 'batched') IS TRUE
                OR ((f.state = 'submitted') IS TRUE AND x.r ? f.refund_id))
        RETURNING {_COMPLETION_COLUMNS}, x.r ? f.refund_id
        """,
        (source, reported, batch_no),
        prepare=False,
    ).fetchall()
    return [_completion(r) for r in rows if r[-1]]


# Refund states of a refund that is in a batch and not final.
IN_BATCH = ("batched", "submitted")


def batch_members(conn: Connection, batch_no: str) -> dict[str, BatchMember]:
    """trade_no -> the refund sent for it in `batch_no` (amount as sent, current state)."""
    rows = conn.execute(
        "SELECT i.refund_id, i.trade_no, i.amount, r.state"
        " FROM batch_items i JOIN refunds r USING (refund_id) WHERE i.batch_no = %s",
        (batch_no,),
    ).fetchall()
    return {str(r[1]): BatchMember(str(r[0]), str(r[1]), r[2], str(r[3])) for r in rows}


def open_in_batch(conn: Connection, batch_no: str) -> list[str]:
    """Refunds still waiting in `batch_no` (batched or submitted to it)."""
    rows = conn.execute(
        "SELECT refund_id FROM refunds WHERE batch_no = %s AND (state IN ('batched', 'submitted'))"
        " IS TRUE ORDER BY refund_id",
        (batch_no,),
        prepare=False,
    ).fetchall()
    return [str(r[0]) for r in rows]


def waiting_by_state(conn: Connection) -> list[tuple[str, int, float]]:
    """(state, count, age in seconds of the oldest) of refunds not final yet."""
    rows = conn.execute(
        "SELECT state, count(*), extract(epoch FROM clock_timestamp() - min(received_at))"
        " FROM refunds WHERE state IN ('pending', 'batched', 'submitted') GROUP BY state"
    ).fetchall()
    return [(str(r[0]), int(r[1]), float(r[2] or 0)) for r in rows]
