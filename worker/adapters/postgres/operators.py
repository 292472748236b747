"""The console's people and its audit trail: tables `operators` and `audit_log` (0005).

An operator's password is stored only as its argon2 hash (made and checked by
`worker.services.signin`). Failed sign-ins are counted here and the lock is decided
here, with the database's clock, so every console pod sees the same count and the
same lock whatever its own clock says.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from worker.adapters.postgres.pool import Connection

OUTCOMES = ("ok", "refused", "failed")

_OPERATOR_COLUMNS = (
    "name, password_hash, created_at, failed_logins, locked_until, last_login_at, disabled,"
    " locked_until IS NOT NULL AND locked_until > clock_timestamp()"
)


@dataclass(frozen=True, slots=True)
class OperatorRecord:
    name: str
    password_hash: str
    created_at: datetime
    failed_logins: int
    locked_until: datetime | None
    last_login_at: datetime | None
    disabled: bool
    locked: bool  # locked_until lies ahead, by the database's clock


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: datetime
    operator: str
    action: str
    target: str | None
    outcome: str
    detail: str | None


def _operator(row: tuple[Any, ...]) -> OperatorRecord:
    return OperatorRecord(*row)


def add_operator(conn: Connection, name: str, password_hash: str) -> bool:
    """Create an operator; False when the name is taken (nothing changed)."""
    row = conn.execute(
        "INSERT INTO operators (name, password_hash) VALUES (%s, %s)"
        " ON CONFLICT (name) DO NOTHING RETURNING name",
        (name, password_hash),
    ).fetchone()
    return row is not None


def get_operator(conn: Connection, name: str, *, for_update: bool = False) -> OperatorRecord | None:
    """The operator `name`; `for_update` locks the row until the transaction ends."""
    lock = " FOR UPDATE" if for_update else ""
    row = conn.execute(
        f"SELECT {_OPERATOR_COLUMNS} FROM operators WHERE name = %s{lock}", (name,)
    ).fetchone()
    return None if row is None else _operator(row)


def list_operators(conn: Connection) -> list[OperatorRecord]:
    rows = conn.execute(f"SELECT {_OPERATOR_COLUMNS} FROM operators ORDER BY name").fetchall()
    return [_operator(r) for r in rows]


def record_failed_login(
    conn: Connection, name: str, *, max_failures: int, lock_seconds: float
) -> datetime | None:
    """Count a wrong password; at the `max_failures`-th in a row, lock the account for
    `lock_seconds` (the count starts again). Returns the lock's end if it is locked now."""
    row = conn.execute(
        "UPDATE operators SET"
        " failed_logins = CASE WHEN failed_logins + 1 >= %(max)s THEN 0"
        "                 ELSE failed_logins + 1 END,"
        " locked_until = CASE WHEN failed_logins + 1 >= %(max)s"
        "                THEN clock_timestamp() + make_interval(secs => %(secs)s)"
        "                ELSE locked_until END"
        " WHERE name = %(name)s"
        " RETURNING CASE WHEN locked_until > clock_timestamp() THEN locked_until END",
        {"max": max_failures, "secs": lock_seconds, "name": name},
    ).fetchone()
    return None if row is None else row[0]


def record_login(conn: Connection, name: str, *, new_hash: str | None = None) -> None:
    """A successful sign-in: the failure count starts again; `new_hash` replaces the
    stored hash (made with the hasher's current parameters)."""
    conn.execute(
        "UPDATE operators SET failed_logins = 0, locked_until = NULL,"
        " last_login_at = clock_timestamp(), password_hash = coalesce(%s, password_hash)"
        " WHERE name = %s",
        (new_hash, name),
    )


def unlock_operator(conn: Connection, name: str) -> bool:
    """Lift a lock and forget the failures; False when there is no such operator."""
    row = conn.execute(
        "UPDATE operators SET failed_logins = 0, locked_until = NULL WHERE name = %s"
        " RETURNING name",
        (name,),
    ).fetchone()
    return row is not None


def disable_operator(conn: Connection, name: str) -> bool:
    """Refuse every later sign-in (and end the operator's sessions at their next request)."""
    row = conn.execute(
        "UPDATE operators SET disabled = true WHERE name = %s RETURNING name", (name,)
    ).fetchone()
    return row is not None


def set_password(conn: Connection, name: str, password_hash: str) -> bool:
    row = conn.execute(
        "UPDATE operators SET password_hash = %s, failed_logins = 0, locked_until = NULL"
        " WHERE name = %s RETURNING name",
        (password_hash, name),
    ).fetchone()
    return row is not None


# --- the audit log ---------------------------------------------------------------------


def append_audit(
    conn: Connection,
    *,
    operator: str,
    action: str,
    target: str | None,
    outcome: str,
    detail: str | None = None,
) -> int:
    """One line of the audit trail; its id. `detail` is cut to 1000 characters."""
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {', '.join(OUTCOMES)}, not {outcome!r}")
    row = conn.execute(
        "INSERT INTO audit_log (operator, action, target, outcome, detail)"
        " VALUES (%s, %s, %s, %s, %s) RETURNING id",
        (
            operator[:200],
            action[:100],
            None if target is None else target[:200],
            outcome,
            None if detail is None else detail[:1000],
        ),
    ).fetchone()
    assert row is not None
    return int(row[0])


def latest_audit(
    conn: Connection, *, limit: int = 200, target: str | None = None
) -> list[AuditEntry]:
    """The newest entries first, all of them or those about `target`."""
    where = "" if target is None else " WHERE target = %(target)s"
    rows = conn.execute(
        "SELECT id, at, operator, action, target, outcome, detail FROM audit_log"
        f"{where} ORDER BY id DESC LIMIT %(limit)s",
        {"target": target, "limit": limit},
    ).fetchall()
    return [AuditEntry(*r) for r in rows]
