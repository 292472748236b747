"""Operators' passwords and sign-in, with the lock-out (the console and `refund-worker operators`).

Passwords are hashed with argon2id (`argon2-cffi`'s `PasswordHasher`); a hash made with
older parameters is replaced at the next successful sign-in.

`authenticate` answers one sign-in attempt inside one transaction holding the
operator's row: `LOCK_FAILURES` wrong passwords in a row lock the account for
`LOCK_SECONDS`, counted and decided in the database (`worker.adapters.postgres.operators`)
so several console pods agree.

What a person who does not know the password learns (the choice, documented in
docs/console.md): an unknown name, a disabled account and a wrong password all answer
"name or password is wrong", and an unknown name costs one hash check like a real one.
A real account that is locked answers "account locked until HH:MM": that tells
whoever tries that the name exists, which is accepted so that a locked-out operator
knows to wait or to ask for `refund-worker operators unlock`. Unknown names are never
locked (there is nothing to count against), so the lock says nothing about them.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime

import structlog
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from worker.adapters.postgres import operators as store
from worker.adapters.postgres.pool import Database

log = structlog.get_logger("worker.signin")

LOCK_FAILURES = 5
LOCK_SECONDS = 15 * 60
NAME = re.compile(r"[A-Za-z0-9_.@-]{1,64}", re.ASCII)
MIN_PASSWORD_CHARS = 12
MAX_PASSWORD_CHARS = 1024

_HASHER = PasswordHasher()
# Checked against when the name is unknown, so that such an attempt takes as long.
_DUMMY_HASH = _HASHER.hash(secrets.token_urlsafe(16))


class PasswordRefused(ValueError):
    """A new password that does not meet the rules (the message says which)."""


def hasher() -> PasswordHasher:
    return _HASHER


def valid_name(name: str) -> bool:
    return NAME.fullmatch(name) is not None


def check_new_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_CHARS:
        raise PasswordRefused(f"a password needs at least {MIN_PASSWORD_CHARS} characters")
    if len(password) > MAX_PASSWORD_CHARS:
        raise PasswordRefused(f"a password has at most {MAX_PASSWORD_CHARS} characters")


def hash_password(password: str) -> str:
    """The argon2id hash of a new password (checked by `check_new_password` first)."""
    check_new_password(password)
    return _HASHER.hash(password)


def generate_password() -> str:
    """A random password of 20 URL-safe characters (about 120 bits)."""
    return secrets.token_urlsafe(15)


@dataclass(frozen=True, slots=True)
class SignIn:
    """The answer to one attempt: `ok`, or `wrong` / `locked` (with `locked_until`)."""

    outcome: str
    name: str
    locked_until: datetime | None = None
    rehashed: bool = False

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"


def _verify(stored_hash: str, password: str) -> bool:
    try:
        return bool(_HASHER.verify(stored_hash, password))
    except VerifyMismatchError:
        return False
    except (VerificationError, InvalidHashError):
        log.error("signin.bad_hash")
        return False


def authenticate(
    db: Database,
    name: str,
    password: str,
    *,
    max_failures: int = LOCK_FAILURES,
    lock_seconds: float = LOCK_SECONDS,
) -> SignIn:
    """Check one sign-in attempt and count it (see the module docstring)."""
    if not valid_name(name) or not password or len(password) > MAX_PASSWORD_CHARS:
        _verify(_DUMMY_HASH, password[:MAX_PASSWORD_CHARS])
        return SignIn("wrong", name)
    with db.transaction() as conn:
        record = store.get_operator(conn, name, for_update=True)
        if record is None or record.disabled:
            _verify(_DUMMY_HASH, password)
            return SignIn("wrong", name)
        if record.locked:
            return SignIn("locked", name, record.locked_until)
        if not _verify(record.password_hash, password):
            until = store.record_failed_login(
                conn, name, max_failures=max_failures, lock_seconds=lock_seconds
            )
            if until is not None:
                log.warning("signin.locked", operator=name, locked_until=until.isoformat())
                return SignIn("locked", name, until)
            return SignIn("wrong", name)
        new_hash = None
        if _HASHER.check_needs_rehash(record.password_hash):
            new_hash = _HASHER.hash(password)
        store.record_login(conn, name, new_hash=new_hash)
    return SignIn("ok", name, rehashed=new_hash is not None)


def may_act(db: Database, name: str) -> bool:
    """Whether a signed-in operator still may act (exists, not disabled)."""
    with db.transaction() as conn:
        record = store.get_operator(conn, name)
    return record is not None and not record.disabled


def audit(
    db: Database,
    *,
    operator: str,
    action: str,
    target: str | None,
    outcome: str,
    detail: str | None = None,
) -> None:
    """Append one line to the audit trail (and log it as `audit.recorded`)."""
    with db.transaction() as conn:
        store.append_audit(
            conn, operator=operator, action=action, target=target, outcome=outcome, detail=detail
        )
    log.info("audit.recorded", operator=operator, action=action, target=target, outcome=outcome)
