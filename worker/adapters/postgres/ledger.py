"""The refund ledger's queries (PostgreSQL).

Every statement the services run against the ledger lives here, set-based
(`unnest` over arrays) so a micro-batch or a 1000-item batch costs a handful of
round trips, not one per refund.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from worker.adapters.postgres.pool import Connection, lock_key
from worker.domain.rules import TradeTally

COMPLETED_ROUTING_KEY = "refund.completed"
HALT_CONTROL = "submission_halted"


@dataclass(frozen=True, slots=True)
class NewRefund:
    refund_id: str
    event_id: str
    trade_no: str
    amount: Decimal
    reason: str | None
    trade_amount: Decimal | None
    order_id: str | None
    metadata: Mapping[str, Any] | None
    requested_at: datetime | None
    content_hash: str
    state: str  # 'pending' or 'rejected'
    code: str | None


@dataclass(frozen=True, slots=True)
class PendingRefund:
    refund_id: str
    trade_no: str
    amount: Decimal
    reason: str | None
    received_at: datetime
    batch_attempts: int


@dataclass(frozen=True, slots=True)
class BatchItem:
    refund_id: str
    trade_no: str
    amount: Decimal
    reason_sent: str
    batch_attempts: int = 0


@dataclass(frozen=True, slots=True)
class Batch:
    batch_no: str
    batch_day: date
    state: str
    item_count: int
    attempts: int
    maybe_sent: bool
    next_attempt_at: datetime | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Completion:
    """A refund that reached a final state, with what its refund.completed event needs."""

    refund_id: str
    trade_no: str
    amount: Decimal
    order_id: str | None
    metadata: Mapping[str, Any] | None
    status: str
    code: str
    batch_no: str | None
    completed_at: datetime


# --- intake -----------------------------------------------------------------


def _json_list(values: Iterable[str | int]) -> str:
    """A list parameter as one JSON text (see `_TEXTS`): C to build, no per-element adapting."""
    return json.dumps(list(values), ensure_ascii=False, separators=(",", ":"))


# A text[] built server-side from a `_json_list` parameter, once per statement (an InitPlan),
# so `= ANY(...)` keeps its index scan.
_TEXTS = "ARRAY(SELECT json_array_elements_text(%s::json))"


def existing_hashes(conn: Connection, refund_ids: Sequence[str]) -> dict[str, str]:
    """refund_id -> content_hash of those stored; read it after `lock_trades`."""
    rows = conn.execute(
        f"SELECT refund_id, content_hash FROM refunds WHERE refund_id = ANY({_TEXTS})",
        (_json_list(refund_ids),),
    ).fetchall()
    return {str(r[0]): str(r[1]) for r in rows}


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

    Every refund of this worker but rejected and failed ones, plus the refunds the
    gateway reported for the trade under batch numbers this worker never used
    (`trade_gateway_refunds`: the merchant console, another system), which count
    toward the 99 refunds and the paid amount at Alipay too. The one place a
    trade's tally is computed.
    """
    rows = conn.execute(
        "SELECT trade_no, sum(n), coalesce(sum(total), 0) FROM ("
        " SELECT trade_no, count(*) AS n, sum(amount) AS total FROM refunds"
        f" WHERE trade_no = ANY({_TEXTS}) AND state NOT IN ('rejected', 'failed')"
        " GROUP BY trade_no"
        " UNION ALL SELECT trade_no, count(*), sum(amount) FROM trade_gateway_refunds"
        f" WHERE trade_no = ANY({_TEXTS}) GROUP BY trade_no"
        ") AS t GROUP BY trade_no",
        (_json_list(set(trade_nos)), _json_list(set(trade_nos))),
    ).fetchall()
    tallies = {t: TradeTally() for t in trade_nos}
    for trade_no, count, total in rows:
        tallies[str(trade_no)] = TradeTally(int(count), Decimal(total))
    return tallies


def _money(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def insert_refunds(conn: Connection, refunds: Sequence[NewRefund]) -> set[str]:
    """Insert refunds that are not there yet; returns the refund_ids actually inserted.

    The rows travel as one JSON parameter expanded by `json_to_recordset`: `json.dumps`
    is C, where adapting twelve arrays element by element is Python. Amounts go as
    decimal strings (exact), times as ISO 8601 with their offset.
    """
    if not refunds:
        return set()
    payload = json.dumps(
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
            }
            for r in refunds
        ],
        ensure_ascii=False,
        separators=(",", ":"),
    )
    rows = conn.execute(
        """
        INSERT INTO refunds (refund_id, event_id, trade_no, amount, reason, trade_amount,
                             order_id, metadata, requested_at, content_hash, state, code,
                             completed_at)
        SELECT r.refund_id, r.event_id, r.trade_no, r.amount, r.reason, r.trade_amount,
               r.order_id, r.metadata, r.requested_at, r.content_hash, r.state, r.code,
               CASE WHEN r.state = 'rejected' THEN clock_timestamp() END
        FROM json_to_recordset(%s::json)
             AS r(refund_id text, event_id text, trade_no text, amount numeric, reason text,
                  trade_amount numeric, order_id text, metadata jsonb,
                  requested_at timestamptz, content_hash text, state text, code text)
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
        "SELECT refund_id, trade_no, amount, order_id, metadata, state, code, batch_no,"
        " completed_at FROM refunds WHERE refund_id = ANY(%s)"
        " AND state IN ('succeeded', 'failed', 'rejected')",
        (list(refund_ids),),
    ).fetchall()
    return [_completion(r) for r in rows]


def _completion(row: Sequence[Any]) -> Completion:
    return Completion(
        refund_id=row[0],
        trade_no=row[1],
        amount=row[2],
        order_id=row[3],
        metadata=row[4],
        status=row[5],
        code=row[6] or "",
        batch_no=row[7],
        completed_at=row[8],
    )


def insert_outbox(conn: Connection, events: Sequence[tuple[str, str, str]]) -> None:
    """Insert (event_id, routing_key, body) rows; an event_id already there is left alone."""
    if not events:
        return
    conn.execute(
        "INSERT INTO outbox (event_id, routing_key, body)"
        " SELECT e->>0, e->>1, e->>2 FROM json_array_elements(%s::json) AS e"
        " ON CONFLICT (event_id) DO NOTHING",
        (json.dumps(events, ensure_ascii=False, separators=(",", ":")),),
    )
    conn.execute("NOTIFY refund_outbox")


# --- packing ----------------------------------------------------------------


def pending_refunds(conn: Connection, limit: int) -> list[PendingRefund]:
    rows = conn.execute(
        "SELECT refund_id, trade_no, amount, reason, received_at, batch_attempts FROM refunds"
        " WHERE state = 'pending' ORDER BY received_at, refund_id LIMIT %s FOR UPDATE SKIP LOCKED",
        (limit,),
    ).fetchall()
    return [PendingRefund(*r) for r in rows]


def next_batch_serial(conn: Connection) -> int:
    row = conn.execute("SELECT nextval('batch_serial')").fetchone()
    assert row is not None
    return int(row[0])


def create_batch(
    conn: Connection, batch_no: str, batch_day: date, items: Sequence[BatchItem], due: datetime
) -> None:
    """Record a batch, its items as they will be sent, and move the refunds to `batched`."""
    conn.execute(
        "INSERT INTO batches (batch_no, batch_day, state, item_count, next_attempt_at)"
        " VALUES (%s, %s, 'ready', %s, %s)",
        (batch_no, batch_day, len(items), due),
    )
    ids = [i.refund_id for i in items]
    rows = json.dumps(
        [[i.refund_id, i.trade_no, str(i.amount), i.reason_sent] for i in items],
        ensure_ascii=False,
        separators=(",", ":"),
    )
    conn.execute(
        "INSERT INTO batch_items (batch_no, refund_id, trade_no, amount, reason_sent, position)"
        " SELECT %s, r->>0, r->>1, (r->>2)::numeric, r->>3, (n - 1)::int"
        " FROM json_array_elements(%s::json) WITH ORDINALITY AS a(r, n)",
        (batch_no, rows),
    )
    # Looked up by primary key, whatever the statistics say (see _STATE_IS): with a plain
    # `state = 'pending'` the planner could scan all of the partial index refunds_pending_idx
    # and test each entry against the 1000 ids, a tenth of a second or more per batch once
    # tens of thousands of refunds wait. Unprepared, so it is planned with the ids in hand.
    conn.execute(
        "UPDATE refunds SET state = 'batched', batch_no = %s, batch_attempts = batch_attempts + 1,"
        " updated_at = clock_timestamp() WHERE refund_id = ANY(%s) AND (state = 'pending') IS TRUE",
        (batch_no, ids),
        prepare=False,
    )


# --- submission ---------------------------------------------------------------


def lock_batch(conn: Connection, batch_no: str) -> Batch | None:
    row = conn.execute(
        "SELECT batch_no, batch_day, state, item_count, attempts, maybe_sent, next_attempt_at,"
        " created_at FROM batches WHERE batch_no = %s FOR UPDATE",
        (batch_no,),
    ).fetchone()
    return None if row is None else Batch(*row)


def batch_items(conn: Connection, batch_no: str) -> list[BatchItem]:
    rows = conn.execute(
        "SELECT i.refund_id, i.trade_no, i.amount, i.reason_sent, r.batch_attempts"
        " FROM batch_items i JOIN refunds r USING (refund_id)"
        " WHERE i.batch_no = %s ORDER BY i.position",
        (batch_no,),
    ).fetchall()
    return [BatchItem(*r) for r in rows]


def update_batch(conn: Connection, batch_no: str, **fields: object) -> None:
    allowed = {
        "state",
        "attempts",
        "maybe_sent",
        "next_attempt_at",
        "last_code",
        "last_error",
        "operator_flag",
        "flagged_at",
        "accepted_at",
        "completed_at",
    }
    unknown = set(fields) - allowed
    if unknown:
        raise ValueError(f"unknown batch fields: {sorted(unknown)}")
    assignments = ", ".join(f"{name} = %s" for name in fields)
    conn.execute(
        f"UPDATE batches SET {assignments}, updated_at = clock_timestamp() WHERE batch_no = %s",
        (*fields.values(), batch_no),
    )


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


def return_to_pending(conn: Connection, batch_no: str) -> list[str]:
    """Items of a batch the gateway certainly did not take go back to pending."""
    rows = conn.execute(
        "UPDATE refunds SET state = 'pending', batch_no = NULL, updated_at = clock_timestamp()"
        " WHERE batch_no = %s AND state = 'batched' RETURNING refund_id",
        (batch_no,),
    ).fetchall()
    return [str(r[0]) for r in rows]


def detach_items(conn: Connection, batch_no: str) -> None:
    """Release a refused batch's refunds so they can be put into new batches."""
    conn.execute(
        "UPDATE refunds SET state = 'pending', batch_no = NULL, updated_at = clock_timestamp()"
        " WHERE batch_no = %s AND state = 'batched'",
        (batch_no,),
    )


_COMPLETION_COLUMNS = (
    "f.refund_id, f.trade_no, f.amount, f.order_id, f.metadata, f.state, f.code,"
    " f.batch_no, f.completed_at"
)


def _outcomes_json(outcomes: Sequence[tuple[str, str, str]]) -> str:
    return json.dumps(
        [{"refund_id": o[0], "state": o[1], "code": o[2]} for o in outcomes],
        ensure_ascii=False,
        separators=(",", ":"),
    )


def finish_refunds(
    conn: Connection, batch_no: str, outcomes: Sequence[tuple[str, str, str]]
) -> list[Completion]:
    """Move refunds of `batch_no` forward to (refund_id, state, code); only from open states.

    Returns the refunds this call completed (a refund already final is left alone).
    """
    if not outcomes:
        return []
    rows = conn.execute(
        f"""
        UPDATE refunds AS f
           SET state = o.state, code = o.code, completed_at = clock_timestamp(),
               updated_at = clock_timestamp()
          FROM json_to_recordset(%s::json) AS o(refund_id text, state text, code text)
         WHERE f.refund_id = o.refund_id AND f.batch_no = %s
           AND (f.state IN ('batched', 'submitted')) IS TRUE
        RETURNING {_COMPLETION_COLUMNS}
        """,
        (_outcomes_json(outcomes), batch_no),
        prepare=False,
    ).fetchall()
    return [_completion(r) for r in rows]


def apply_results(
    conn: Connection, batch_no: str, outcomes: Sequence[tuple[str, str, str]]
) -> list[Completion]:
    """A batch's result in one statement: `mark_submitted`, then `finish_refunds`.

    Refunds of `batch_no` named in `outcomes` (refund_id, state, code) move from `batched`
    or `submitted` to their final state; the batch's other `batched` refunds move to
    `submitted`; nothing else changes. Each row is written once instead of twice when
    the notification comes before the submission's answer was settled. Returns the
    refunds this call completed.

    The outcomes travel as one JSON object keyed by refund_id, looked up per row: no join
    for the planner to turn into a loop over the 1000 outcomes for each of 1000 refunds.
    """
    reported = json.dumps(
        {refund_id: [state, code] for refund_id, state, code in outcomes},
        ensure_ascii=False,
        separators=(",", ":"),
    )
    rows = conn.execute(
        f"""
        UPDATE refunds AS f
           SET state = coalesce(x.r -> f.refund_id ->> 0, 'submitted'),
               code = CASE WHEN x.r ? f.refund_id THEN x.r -> f.refund_id ->> 1 ELSE f.code END,
               completed_at = CASE WHEN x.r ? f.refund_id THEN clock_timestamp()
                                   ELSE f.completed_at END,
               updated_at = clock_timestamp()
          FROM (SELECT %s::jsonb AS r) AS x
         WHERE f.batch_no = %s
           AND ((f.state = 'batched') IS TRUE
                OR ((f.state = 'submitted') IS TRUE AND x.r ? f.refund_id))
        RETURNING {_COMPLETION_COLUMNS}, x.r ? f.refund_id
        """,
        (reported, batch_no),
        prepare=False,
    ).fetchall()
    return [_completion(r) for r in rows if r[9]]


def submission_halt(conn: Connection) -> str | None:
    row = conn.execute("SELECT value FROM control WHERE name = %s", (HALT_CONTROL,)).fetchone()
    return None if row is None else str(row[0])


def set_submission_halt(conn: Connection, reason: str) -> None:
    conn.execute(
        "INSERT INTO control (name, value) VALUES (%s, %s)"
        " ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value, set_at = clock_timestamp()",
        (HALT_CONTROL, reason),
    )


def clear_submission_halt(conn: Connection) -> bool:
    cur = conn.execute("DELETE FROM control WHERE name = %s", (HALT_CONTROL,))
    return cur.rowcount > 0


# --- notifications -------------------------------------------------------------


def store_notification(
    conn: Connection,
    *,
    notify_id: str,
    kind: str,
    batch_no: str | None,
    form: Mapping[str, str],
    received_at: datetime,
    outcome: str,
    detail: str | None = None,
) -> bool:
    """Insert into the inbox; False when this notify_id was stored before."""
    row = conn.execute(
        "INSERT INTO notifications (notify_id, kind, batch_no, form, received_at, outcome, detail)"
        " VALUES (%s, %s, %s, %s::jsonb, %s, %s, %s) ON CONFLICT (notify_id) DO NOTHING"
        " RETURNING notify_id",
        (notify_id, kind, batch_no, json.dumps(dict(form)), received_at, outcome, detail),
    ).fetchone()
    return row is not None


def set_notification_outcome(
    conn: Connection, notify_id: str, outcome: str, detail: str | None
) -> None:
    conn.execute(
        "UPDATE notifications SET outcome = %s, detail = %s WHERE notify_id = %s",
        (outcome, detail, notify_id),
    )


def batch_refund_ids(conn: Connection, batch_no: str) -> dict[str, str]:
    """trade_no -> refund_id for the items of a batch."""
    rows = conn.execute(
        "SELECT trade_no, refund_id FROM batch_items WHERE batch_no = %s", (batch_no,)
    ).fetchall()
    return {str(r[0]): str(r[1]) for r in rows}


# --- relay ------------------------------------------------------------------


def take_outbox(conn: Connection, limit: int) -> list[tuple[int, str, str, str]]:
    """Delete and return the `limit` oldest outbox rows no other relay holds, oldest first.

    The rows stay locked (deleted but not committed) until the caller's transaction ends;
    if it rolls back (the broker did not take them), they are all there again. One
    statement where a claim (SELECT ... FOR UPDATE SKIP LOCKED) and a DELETE by id were two.
    """
    rows = conn.execute(
        "DELETE FROM outbox WHERE id = ANY(ARRAY("
        "SELECT id FROM outbox ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED))"
        " RETURNING id, event_id, routing_key, body",
        (limit,),
    ).fetchall()
    taken = [(int(r[0]), str(r[1]), str(r[2]), str(r[3])) for r in rows]
    taken.sort()
    return taken
