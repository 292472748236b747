"""Switches in `control`: the per-merchant submission halt after a configuration error.

One row per halted merchant, named `submission_halted:<partner>`; its value says why.
"""

from __future__ import annotations

from datetime import datetime

from worker.adapters.postgres.pool import Connection

HALT_PREFIX = "submission_halted:"


def _name(partner: str) -> str:
    return f"{HALT_PREFIX}{partner}"


def submission_halt(conn: Connection, partner: str) -> str | None:
    """Why the merchant's submission is halted, or None."""
    row = conn.execute("SELECT value FROM control WHERE name = %s", (_name(partner),)).fetchone()
    return None if row is None else str(row[0])


def submission_halts(conn: Connection) -> dict[str, tuple[str, datetime]]:
    """partner -> (reason, since) of every halted merchant."""
    rows = conn.execute(
        "SELECT substr(name, %s), value, set_at FROM control WHERE starts_with(name, %s)",
        (len(HALT_PREFIX) + 1, HALT_PREFIX),
    ).fetchall()
    return {str(r[0]): (str(r[1]), r[2]) for r in rows}


def set_submission_halt(conn: Connection, partner: str, reason: str) -> None:
    conn.execute(
        "INSERT INTO control (name, value) VALUES (%s, %s)"
        " ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value, set_at = clock_timestamp()",
        (_name(partner), reason),
    )


def clear_submission_halt(conn: Connection, partner: str | None = None) -> list[str]:
    """Clear the merchant's halt (every merchant's when `partner` is None); the partners
    whose halt was cleared."""
    if partner is None:
        rows = conn.execute(
            "DELETE FROM control WHERE starts_with(name, %s) RETURNING substr(name, %s)",
            (HALT_PREFIX, len(HALT_PREFIX) + 1),
        ).fetchall()
    else:
        rows = conn.execute(
            "DELETE FROM control WHERE name = %s RETURNING substr(name, %s)",
            (_name(partner), len(HALT_PREFIX) + 1),
        ).fetchall()
    return sorted(str(r[0]) for r in rows)
