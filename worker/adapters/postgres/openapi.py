"""Statements on the OpenAPI refunds (channels `trade` and `coupon`, docs/openapi.md).

One refund is one request: its row in `refunds` carries the request number, the calls
made, whether one may have reached the gateway, the next step and its time, the claim
of the call in flight and, once settled, Alipay's ids. `openapi_calls` keeps every call
and its answer as evidence; `openapi_notifications` the verified notifications.
The halt of an application's channel after a configuration error is a `control` row
`openapi_halted:<partner>`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from worker.adapters.postgres._sql import _COMPLETION_COLUMNS, _completion
from worker.adapters.postgres.pool import Connection, lock_key
from worker.adapters.postgres.records import Completion

__all__ = [
    "OPENAPI_HALT_PREFIX",
    "OpenApiRefund",
    "claim_call",
    "clear_openapi_halt",
    "due_openapi_refunds",
    "finish_openapi",
    "in_flight",
    "lock_app",
    "lock_openapi_refund",
    "openapi_halt",
    "record_call",
    "refund_by_out_request_no",
    "schedule_next",
    "set_openapi_halt",
    "store_openapi_notification",
]

OPENAPI_HALT_PREFIX = "openapi_halted:"
MAX_ANSWER_STORED = 65536


@dataclass(frozen=True, slots=True)
class OpenApiRefund:
    refund_id: str
    partner: str
    channel: str
    state: str
    trade_no: str | None
    out_trade_no: str | None
    auth_no: str | None
    out_request_no: str
    amount: Decimal
    reason: str | None
    attempts: int
    maybe_sent: bool
    next_step: str | None
    next_attempt_at: datetime | None
    claimed_at: datetime | None
    last_verdict: str | None
    last_code: str | None
    held_reason: str | None
    now: datetime  # the database's clock when read

    @property
    def final(self) -> bool:
        return self.state in ("succeeded", "failed", "rejected")


_COLUMNS = (
    "refund_id, partner, channel, state, trade_no, out_trade_no, auth_no, out_request_no,"
    " amount, reason, openapi_attempts, maybe_sent, next_step, next_attempt_at, claimed_at,"
    " last_verdict, last_code, held_reason, clock_timestamp()"
)


def _refund(row: Sequence[object]) -> OpenApiRefund:
    return OpenApiRefund(*row)  # type: ignore[arg-type]


def lock_openapi_refund(conn: Connection, refund_id: str) -> OpenApiRefund | None:
    """The OpenAPI refund `refund_id`, locked for this transaction (None: no such refund)."""
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM refunds WHERE refund_id = %s AND channel <> 'batch' FOR UPDATE",
        (refund_id,),
    ).fetchone()
    return None if row is None else _refund(row)


def refund_by_out_request_no(
    conn: Connection, out_request_no: str, partner: str
) -> OpenApiRefund | None:
    """The merchant's OpenAPI refund sent under `out_request_no`, locked; None if none."""
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM refunds WHERE out_request_no = %s AND partner = %s FOR UPDATE",
        (out_request_no, partner),
    ).fetchone()
    return None if row is None else _refund(row)


def lock_app(conn: Connection, partner: str) -> None:
    """Serialise claims of one merchant's application (the in-flight limit is counted inside)."""
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key("openapi_app", partner),))


def in_flight(conn: Connection, partner: str, lease_seconds: float) -> int:
    """Calls of the merchant's application in flight: claimed, not settled, within the lease."""
    row = conn.execute(
        "SELECT count(*) FROM refunds WHERE partner = %s AND channel <> 'batch'"
        " AND claimed_at IS NOT NULL"
        " AND claimed_at > clock_timestamp() - make_interval(secs => %s)",
        (partner, lease_seconds),
    ).fetchone()
    return int(row[0]) if row else 0


def claim_call(conn: Connection, refund_id: str, *, sending: bool) -> int:
    """Count and record one call before it is made; returns its number (from 1).

    A send marks the refund maybe sent now, so a crash before the answer is settled
    leaves it so; the settle step clears it again only for a send that certainly did
    not leave.
    """
    row = conn.execute(
        "UPDATE refunds SET openapi_attempts = openapi_attempts + 1,"
        " claimed_at = clock_timestamp(), updated_at = clock_timestamp(),"
        " state = CASE WHEN state = 'pending' THEN 'submitted' ELSE state END,"
        " maybe_sent = maybe_sent OR %s"
        " WHERE refund_id = %s RETURNING openapi_attempts",
        (sending, refund_id),
    ).fetchone()
    assert row is not None
    return int(row[0])


def release_claim(conn: Connection, refund_id: str) -> None:
    """The call is over: the refund no longer counts toward its app's in-flight limit."""
    conn.execute("UPDATE refunds SET claimed_at = NULL WHERE refund_id = %s", (refund_id,))


def schedule_next(
    conn: Connection,
    refund_id: str,
    *,
    step: str | None,
    delay_seconds: float | None,
    maybe_sent: bool,
    last_verdict: str | None = None,
    last_code: str | None = None,
    held_reason: str | None = None,
) -> None:
    """Settle a call that did not end the refund: clear the claim, set the next step.

    `delay_seconds` None leaves no next time (a hold, a halted channel that `resume`
    re-drives). `last_verdict`/`last_code` replace the stored ones when given.
    """
    conn.execute(
        "UPDATE refunds SET claimed_at = NULL, enqueued_at = NULL,"
        " updated_at = clock_timestamp(), maybe_sent = %(maybe)s,"
        " next_step = coalesce(%(step)s, next_step),"
        " next_attempt_at = CASE WHEN %(delay)s::float8 IS NULL THEN next_attempt_at"
        "   ELSE clock_timestamp() + make_interval(secs => %(delay)s::float8) END,"
        " last_verdict = coalesce(%(verdict)s, last_verdict),"
        " last_code = CASE WHEN %(verdict)s::text IS NULL THEN last_code ELSE %(code)s END,"
        " held_reason = coalesce(%(held)s, held_reason)"
        " WHERE refund_id = %(refund_id)s",
        {
            "maybe": maybe_sent,
            "step": step,
            "delay": delay_seconds,
            "verdict": last_verdict,
            "code": last_code,
            "held": held_reason,
            "refund_id": refund_id,
        },
    )


def finish_openapi(
    conn: Connection,
    refund_id: str,
    *,
    state: str,
    code: str,
    source: str,
    trade_no: str | None = None,
    operation_id: str | None = None,
    gmt_refund_pay: str | None = None,
) -> list[Completion]:
    """Move an open OpenAPI refund to its final state with Alipay's ids; [] if already final."""
    rows = conn.execute(
        f"""
        UPDATE refunds AS f
           SET state = %(state)s, code = %(code)s, completed_at = clock_timestamp(),
               result_source = %(source)s, updated_at = clock_timestamp(),
               claimed_at = NULL, enqueued_at = NULL, next_attempt_at = NULL,
               trade_no = coalesce(f.trade_no, %(trade_no)s),
               operation_id = coalesce(%(operation_id)s, f.operation_id),
               gmt_refund_pay = coalesce(%(gmt)s, f.gmt_refund_pay)
         WHERE f.refund_id = %(refund_id)s AND f.state IN ('pending', 'submitted')
        RETURNING {_COMPLETION_COLUMNS}
        """,
        {
            "state": state,
            "code": code,
            "source": source,
            "trade_no": trade_no,
            "operation_id": operation_id,
            "gmt": gmt_refund_pay,
            "refund_id": refund_id,
        },
    ).fetchall()
    return [_completion(r) for r in rows]


def record_call(
    conn: Connection,
    refund_id: str,
    attempt: int,
    *,
    kind: str,
    method: str,
    started_at: datetime,
    outcome: str,
    verdict: str | None,
    code: str | None,
    action: str | None,
    detail: str,
    answer: str | None,
) -> None:
    """Keep one call and what came of it (the raw answer as evidence, bounded)."""
    conn.execute(
        "INSERT INTO openapi_calls (refund_id, attempt, kind, method, started_at, outcome,"
        " verdict, code, action, detail, answer) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s,"
        " %s, %s) ON CONFLICT (refund_id, attempt) DO NOTHING",
        (
            refund_id,
            attempt,
            kind,
            method,
            started_at,
            outcome,
            verdict,
            code,
            action,
            detail[:500],
            None if answer is None else answer[:MAX_ANSWER_STORED],
        ),
    )


def due_openapi_refunds(
    conn: Connection, *, lease_seconds: float, redrive_after: float, limit: int = 500
) -> list[str]:
    """OpenAPI refunds whose next call is due and that no job holds: marked handed over.

    Not held, not of a halted merchant, not claimed within the lease (a claim older
    than it was lost), not handed over within `redrive_after` (a lost job is handed
    over again after that).
    """
    rows = conn.execute(
        """
        UPDATE refunds SET enqueued_at = clock_timestamp()
         WHERE refund_id IN (
            SELECT refund_id FROM refunds
             WHERE channel <> 'batch' AND state IN ('pending', 'submitted')
               AND next_attempt_at <= clock_timestamp() AND held_reason IS NULL
               AND (claimed_at IS NULL
                    OR claimed_at < clock_timestamp() - make_interval(secs => %(lease)s))
               AND (enqueued_at IS NULL
                    OR enqueued_at < clock_timestamp() - make_interval(secs => %(redrive)s))
               AND NOT EXISTS (SELECT 1 FROM control
                                WHERE name = %(prefix)s || refunds.partner)
             ORDER BY next_attempt_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED)
        RETURNING refund_id
        """,
        {
            "lease": lease_seconds,
            "redrive": redrive_after,
            "prefix": OPENAPI_HALT_PREFIX,
            "limit": limit,
        },
    ).fetchall()
    return sorted(str(r[0]) for r in rows)


def openapi_halt(conn: Connection, partner: str) -> str | None:
    """Why the merchant's OpenAPI channel is halted, or None."""
    row = conn.execute(
        "SELECT value FROM control WHERE name = %s", (OPENAPI_HALT_PREFIX + partner,)
    ).fetchone()
    return None if row is None else str(row[0])


def set_openapi_halt(conn: Connection, partner: str, reason: str) -> None:
    conn.execute(
        "INSERT INTO control (name, value) VALUES (%s, %s)"
        " ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value, set_at = clock_timestamp()",
        (OPENAPI_HALT_PREFIX + partner, reason),
    )


def clear_openapi_halt(conn: Connection, partner: str | None = None) -> list[str]:
    """Clear the merchant's OpenAPI halt (every merchant's when None) and make its waiting
    refunds due now; the partners cleared."""
    rows = conn.execute(
        "DELETE FROM control WHERE starts_with(name, %s)"
        " AND (%s::text IS NULL OR name = %s || %s::text) RETURNING substr(name, %s)",
        (OPENAPI_HALT_PREFIX, partner, OPENAPI_HALT_PREFIX, partner, len(OPENAPI_HALT_PREFIX) + 1),
    ).fetchall()
    cleared = sorted(str(r[0]) for r in rows)
    if cleared:
        conn.execute(
            "UPDATE refunds SET next_attempt_at = clock_timestamp(), enqueued_at = NULL"
            " WHERE channel <> 'batch' AND state IN ('pending', 'submitted')"
            " AND held_reason IS NULL AND partner = ANY(%s)",
            (cleared,),
        )
    return cleared


def store_openapi_notification(
    conn: Connection,
    *,
    notify_id: str,
    partner: str,
    notify_type: str,
    out_request_no: str | None,
    refund_id: str | None,
    form: Mapping[str, str],
    received_at: datetime,
    outcome: str,
    detail: str = "",
) -> bool:
    """Store a verified notification by notify_id; False if it was stored before (a resend)."""
    row = conn.execute(
        "INSERT INTO openapi_notifications (notify_id, partner, notify_type, out_request_no,"
        " refund_id, form, received_at, outcome, detail) VALUES (%s, %s, %s, %s, %s, %s::jsonb,"
        " %s, %s, %s) ON CONFLICT (notify_id) DO NOTHING RETURNING notify_id",
        (
            notify_id,
            partner,
            notify_type,
            out_request_no,
            refund_id,
            json.dumps(dict(form), ensure_ascii=False),
            received_at,
            outcome,
            detail[:500],
        ),
    ).fetchone()
    return row is not None
