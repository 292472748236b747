"""Switches in `control`: the submission halt after a configuration error."""

from __future__ import annotations

from worker.adapters.postgres.pool import Connection

HALT_CONTROL = "submission_halted"


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
