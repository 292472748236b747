"""Statements on `outbox`: written with the state change, taken by the relay."""

from __future__ import annotations

from collections.abc import Sequence

from worker.adapters.postgres.pool import Connection
from worker.contracts.json_text import compact

COMPLETED_ROUTING_KEY = "refund.completed"


def insert_outbox(conn: Connection, events: Sequence[tuple[str, str, str]]) -> None:
    """Insert (event_id, routing_key, body) rows; an event_id already there is left alone."""
    if not events:
        return
    conn.execute(
        "INSERT INTO outbox (event_id, routing_key, body)"
        " SELECT e->>0, e->>1, e->>2 FROM json_array_elements(%s::json) AS e"
        " ON CONFLICT (event_id) DO NOTHING",
        (compact(events),),
    )
    conn.execute("NOTIFY refund_outbox")


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


def listen_for_outbox(conn: Connection) -> None:
    """Ask PostgreSQL to wake this (autocommit) connection when outbox rows are added."""
    conn.execute("LISTEN refund_outbox")
