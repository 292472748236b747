"""Statements on `batches` and `batch_items`: numbering, claims, attempts, schedules, sweeps."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from datetime import date, datetime

from worker.adapters.postgres._sql import _BATCH_VIEW
from worker.adapters.postgres.pool import Connection, lock_key
from worker.adapters.postgres.records import Batch, BatchItem, BatchView
from worker.contracts.json_text import compact
from worker.domain.errors import LedgerInvariantError
from worker.domain.states import CLOSED_BATCH_FLAGS


def next_batch_serial(conn: Connection) -> int:
    row = conn.execute("SELECT nextval('batch_serial')").fetchone()
    assert row is not None
    return int(row[0])


def create_batch(
    conn: Connection,
    batch_no: str,
    batch_day: date,
    items: Sequence[BatchItem],
    due: datetime,
    *,
    partner: str,
    awaiting_approval: bool = False,
) -> None:
    """Record a batch of one merchant, its items as they will be sent, and move the refunds
    to `batched`. Every refund must be pending and belong to `partner`.

    `awaiting_approval`: the merchant is on the password service; the batch waits for an
    operator (no attempt is ever due for it)."""
    conn.execute(
        "INSERT INTO batches (batch_no, batch_day, state, item_count, next_attempt_at, partner,"
        " service) VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (
            batch_no,
            batch_day,
            "awaiting_approval" if awaiting_approval else "ready",
            len(items),
            None if awaiting_approval else due,
            partner,
            "pwd" if awaiting_approval else "nopwd",
        ),
    )
    ids = [i.refund_id for i in items]
    rows = compact([[i.refund_id, i.trade_no, str(i.amount), i.reason_sent] for i in items])
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
    moved = conn.execute(
        "UPDATE refunds SET state = 'batched', batch_no = %s, batch_attempts = batch_attempts + 1,"
        " updated_at = clock_timestamp() WHERE refund_id = ANY(%s) AND (state = 'pending') IS TRUE"
        " AND partner = %s",
        (batch_no, ids, partner),
        prepare=False,
    ).rowcount
    if moved != len(set(ids)):
        # A refund that is not pending any more (another packer, a release), or that belongs
        # to another merchant, must not go into a batch whose items say it is there: the
        # caller's transaction is rolled back.
        raise LedgerInvariantError(
            f"batch {batch_no}: {moved} of its {len(ids)} refunds were pending refunds of"
            f" partner {partner}; nothing recorded"
        )


# --- submission ---------------------------------------------------------------


def lock_batch(conn: Connection, batch_no: str) -> Batch | None:
    row = conn.execute(
        "SELECT batch_no, batch_day, state, item_count, attempts, maybe_sent, next_attempt_at,"
        " created_at, partner, service FROM batches WHERE batch_no = %s FOR UPDATE",
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
    """Set fields of a batch (names checked against a fixed list); `updated_at` moves too."""
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
        "service",
        "approved_by",
        "approved_at",
        "completed_at",
        "next_query_at",
    }
    unknown = set(fields) - allowed
    if unknown:
        raise ValueError(f"unknown batch fields: {sorted(unknown)}")
    assignments = ", ".join(f"{name} = %s" for name in fields)
    values = [v.value if isinstance(v, enum.Enum) else v for v in fields.values()]
    conn.execute(
        f"UPDATE batches SET {assignments}, updated_at = clock_timestamp() WHERE batch_no = %s",
        (*values, batch_no),
    )


# Batch states in which the gateway may hold the batch and its result is not known yet.
RECONCILABLE = ("accepted", "unknown", "approved")


def lock_batch_view(conn: Connection, batch_no: str) -> BatchView | None:
    row = conn.execute(
        f"SELECT {_BATCH_VIEW} FROM batches WHERE batch_no = %s FOR UPDATE", (batch_no,)
    ).fetchone()
    return None if row is None else BatchView(*row)


def flag_batch(conn: Connection, batch_no: str, flag: str) -> None:
    """Raise an operator flag on a batch (the first flag raised stays until it is cleared,
    except that a flag of `CLOSED_BATCH_FLAGS` replaces any other)."""
    if flag in CLOSED_BATCH_FLAGS:
        conn.execute(
            "UPDATE batches SET operator_flag = %s, flagged_at = clock_timestamp()"
            " WHERE batch_no = %s",
            (flag, batch_no),
        )
        return
    conn.execute(
        "UPDATE batches SET operator_flag = coalesce(operator_flag, %s),"
        " flagged_at = coalesce(flagged_at, clock_timestamp()) WHERE batch_no = %s",
        (flag, batch_no),
    )


def schedule_query(conn: Connection, batch_no: str, delay_seconds: float) -> None:
    conn.execute(
        "UPDATE batches SET next_query_at = clock_timestamp() + make_interval(secs => %s)"
        " WHERE batch_no = %s",
        (delay_seconds, batch_no),
    )


def claim_due_queries(
    conn: Connection, *, reconcile_after: float, lease: float, limit: int
) -> list[str]:
    """Batches whose query is due, claimed for `lease` seconds (several schedulers are safe).

    Due: the gateway may hold the batch (accepted, or outcome unknown and not about to be
    retried), and either its next query time has come, or it has none yet and its last
    attempt is `reconcile_after` seconds old.
    """
    rows = conn.execute(
        """
        UPDATE batches SET next_query_at = clock_timestamp() + make_interval(secs => %(lease)s)
         WHERE batch_no = ANY(ARRAY(
               SELECT batch_no FROM batches
                WHERE state IN ('accepted', 'unknown', 'approved')
                  AND (state <> 'unknown' OR maybe_sent)
                  AND CASE WHEN next_query_at IS NOT NULL THEN next_query_at <= clock_timestamp()
                           ELSE coalesce(last_attempt_at, accepted_at, updated_at)
                                <= clock_timestamp() - make_interval(secs => %(after)s) END
                ORDER BY coalesce(next_query_at, created_at)
                LIMIT %(limit)s FOR UPDATE SKIP LOCKED))
        RETURNING batch_no
        """,
        {"lease": lease, "after": reconcile_after, "limit": limit},
    ).fetchall()
    return sorted(str(r[0]) for r in rows)


# --- operators ------------------------------------------------------------------------

OPEN_BATCH_STATES = (
    "awaiting_approval",
    "approved",
    "ready",
    "submitting",
    "retry",
    "unknown",
    "accepted",
    "held",
)


def mark_accepted(conn: Connection, batch_no: str) -> int:
    """An operator's word that the gateway holds the batch: its batched refunds are submitted."""
    cur = conn.execute(
        "UPDATE refunds SET state = 'submitted', updated_at = clock_timestamp()"
        " WHERE batch_no = %s AND (state = 'batched') IS TRUE",
        (batch_no,),
        prepare=False,
    )
    conn.execute(
        "UPDATE batches SET state = 'accepted', maybe_sent = true, next_attempt_at = NULL,"
        " next_query_at = clock_timestamp(), operator_flag = NULL,"
        " accepted_at = coalesce(accepted_at, clock_timestamp()), updated_at = clock_timestamp()"
        " WHERE batch_no = %s",
        (batch_no,),
    )
    return cur.rowcount


# --- attempts and schedules -----------------------------------------------------------


def db_now(conn: Connection) -> datetime:
    """The database's clock (due times are compared with it)."""
    row = conn.execute("SELECT clock_timestamp()").fetchone()
    assert row is not None
    value: datetime = row[0]
    return value


def try_packer_lock(conn: Connection, key: int) -> bool:
    """Take the packer's transaction-scoped advisory lock, without waiting."""
    row = conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (key,)).fetchone()
    return bool(row and row[0])


def in_flight_within(conn: Connection, batch_no: str, lease_seconds: float) -> bool:
    """True while a batch in `submitting` was claimed less than `lease_seconds` ago."""
    row = conn.execute(
        "SELECT updated_at > clock_timestamp() - make_interval(secs => %s)"
        " FROM batches WHERE batch_no = %s",
        (lease_seconds, batch_no),
    ).fetchone()
    return bool(row is not None and row[0])


def merchant_in_flight(conn: Connection, partner: str, lease_seconds: float) -> int:
    """How many of the merchant's batches are being sent now (claimed within the lease).

    Takes the merchant's transaction-scoped advisory lock first, so two claims of the
    same merchant count one after the other and the limit holds across replicas.
    """
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key("submit", partner),))
    row = conn.execute(
        "SELECT count(*) FROM batches WHERE partner = %s AND state = 'submitting'"
        " AND updated_at > clock_timestamp() - make_interval(secs => %s)",
        (partner, lease_seconds),
    ).fetchone()
    return 0 if row is None else int(row[0])


def note_attempt(conn: Connection, batch_no: str) -> None:
    """Record now as the batch's last attempt (reconciliation counts its waits from it)."""
    conn.execute(
        "UPDATE batches SET last_attempt_at = clock_timestamp() WHERE batch_no = %s", (batch_no,)
    )


# The longest error text the attempt journal keeps (its CHECK constraint says the same).
ATTEMPT_ERROR_MAX = 500


def record_attempt(
    conn: Connection,
    batch_no: str,
    attempt: int,
    *,
    outcome: str,
    action: str | None,
    code: str | None,
    error: str | None,
) -> None:
    """Journal one settled submission attempt (`batch_attempts`); a second record of the
    same attempt changes nothing. Its start is the batch's `last_attempt_at` as the claim
    noted it, when the batch still counts this attempt as its last: call this before
    `note_attempt` moves it."""
    conn.execute(
        "INSERT INTO batch_attempts (batch_no, attempt, started_at, outcome, action, code, error)"
        " SELECT batch_no, %(attempt)s,"
        " CASE WHEN attempts = %(attempt)s THEN last_attempt_at END,"
        " %(outcome)s, %(action)s, %(code)s, %(error)s"
        " FROM batches WHERE batch_no = %(batch_no)s"
        " ON CONFLICT (batch_no, attempt) DO NOTHING",
        {
            "batch_no": batch_no,
            "attempt": attempt,
            "outcome": outcome,
            "action": action,
            "code": code,
            "error": error[:ATTEMPT_ERROR_MAX] if error else None,
        },
    )


def last_code(conn: Connection, batch_no: str) -> str | None:
    row = conn.execute("SELECT last_code FROM batches WHERE batch_no = %s", (batch_no,)).fetchone()
    return None if row is None or row[0] is None else str(row[0])


def note_flagged(conn: Connection, batch_no: str) -> None:
    conn.execute(
        "UPDATE batches SET flagged_at = clock_timestamp() WHERE batch_no = %s", (batch_no,)
    )


def schedule_attempt(conn: Connection, batch_no: str, delay_seconds: float) -> None:
    """The batch's next attempt is due `delay_seconds` from now (database clock)."""
    conn.execute(
        "UPDATE batches SET next_attempt_at = clock_timestamp() + make_interval(secs => %s)"
        " WHERE batch_no = %s",
        (delay_seconds, batch_no),
    )


# --- sweeps -------------------------------------------------------------------------------


def redrive_due(
    conn: Connection,
    *,
    redrive_seconds: float,
    lease_seconds: float,
    halted: Sequence[str] = (),
) -> list[str]:
    """Batches due for another attempt (or lost in flight), pushed `redrive_seconds` on;
    none of the merchants whose submission is `halted` (partner ids)."""
    rows = conn.execute(
        """
        UPDATE batches
           SET next_attempt_at = clock_timestamp() + make_interval(secs => %(redrive)s)
         WHERE ((state IN ('ready', 'retry', 'unknown')
                 AND next_attempt_at <= clock_timestamp())
             OR (state = 'submitting'
                 AND updated_at < clock_timestamp() - make_interval(secs => %(lease)s)
                 AND next_attempt_at <= clock_timestamp()))
           AND NOT (partner = ANY(%(halted)s))
        RETURNING batch_no
        """,
        {"redrive": redrive_seconds, "lease": lease_seconds, "halted": list(halted)},
    ).fetchall()
    return sorted(str(r[0]) for r in rows)


def flag_overdue(conn: Connection, overdue_seconds: float) -> list[str]:
    """Flag `notification_overdue` on batches the gateway may hold, older than the deadline."""
    rows = conn.execute(
        """
        UPDATE batches
           SET operator_flag = 'notification_overdue', flagged_at = clock_timestamp()
         WHERE state IN ('accepted', 'unknown', 'submitting')
           AND operator_flag IS NULL
           AND created_at < clock_timestamp() - make_interval(secs => %s)
        RETURNING batch_no
        """,
        (overdue_seconds,),
    ).fetchall()
    return sorted(str(r[0]) for r in rows)


def resume_held(conn: Connection, partner: str | None = None) -> list[str]:
    """Held batches (by no flag, a configuration error, or a merchant that was not served)
    become due again, same batch_no; only the merchant's when `partner` is given."""
    rows = conn.execute(
        "UPDATE batches SET state = 'retry', next_attempt_at = clock_timestamp(),"
        " operator_flag = NULL, updated_at = clock_timestamp()"
        " WHERE state = 'held'"
        " AND (operator_flag IS NULL"
        "      OR operator_flag IN ('configuration_error', 'merchant_not_served'))"
        " AND (%(partner)s::text IS NULL OR partner = %(partner)s::text)"
        " RETURNING batch_no",
        {"partner": partner},
    ).fetchall()
    return [str(r[0]) for r in rows]
