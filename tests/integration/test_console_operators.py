"""Operators' passwords, the lock-out and the audit log against the real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from argon2 import PasswordHasher

from tests.support.ledger import rows
from worker.adapters.postgres import operators as store
from worker.adapters.postgres.pool import Database
from worker.services.signin import (
    PasswordRefused,
    audit,
    authenticate,
    hash_password,
    may_act,
)

pytestmark = pytest.mark.integration

PASSWORD = "correct horse battery"


def add(db: Database, name: str = "alice", password: str = PASSWORD) -> None:
    with db.transaction() as conn:
        assert store.add_operator(conn, name, hash_password(password))


def test_a_password_is_stored_only_as_its_argon2id_hash(db: Database) -> None:
    add(db)
    (stored,) = rows(db, "SELECT password_hash FROM operators WHERE name = 'alice'")
    assert stored[0].startswith("$argon2id$") and PASSWORD not in stored[0]
    assert authenticate(db, "alice", PASSWORD).ok
    assert not authenticate(db, "alice", PASSWORD + "x").ok
    with db.transaction() as conn:
        assert not store.add_operator(conn, "alice", hash_password("another password!"))
    with pytest.raises(PasswordRefused, match="at least 12"):
        hash_password("short")


def test_an_old_hash_is_replaced_at_the_next_sign_in(db: Database) -> None:
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSWORD)
    with db.transaction() as conn:
        store.add_operator(conn, "bob", weak)
    result = authenticate(db, "bob", PASSWORD)
    assert result.ok and result.rehashed
    (stored,) = rows(db, "SELECT password_hash, last_login_at FROM operators WHERE name = 'bob'")
    assert stored[0] != weak and stored[1] is not None
    again = authenticate(db, "bob", PASSWORD)
    assert again.ok and not again.rehashed


def test_five_wrong_passwords_lock_the_account_for_fifteen_minutes(db: Database) -> None:
    add(db)
    before = datetime.now(UTC)
    answers = [authenticate(db, "alice", f"wrong password {i}") for i in range(5)]
    assert [a.outcome for a in answers] == ["wrong"] * 4 + ["locked"]
    until = answers[-1].locked_until
    assert until is not None
    assert before + timedelta(minutes=14) < until < before + timedelta(minutes=16)
    # Locked: even the right password is refused, and the end does not move.
    locked = authenticate(db, "alice", PASSWORD)
    assert (locked.outcome, locked.locked_until) == ("locked", until)
    with db.transaction() as conn:
        assert store.unlock_operator(conn, "alice")
        assert not store.unlock_operator(conn, "nobody")
    assert authenticate(db, "alice", PASSWORD).ok


def test_the_lock_is_decided_by_the_database_clock(db: Database) -> None:
    add(db)
    with db.transaction() as conn:
        conn.execute("UPDATE operators SET locked_until = clock_timestamp() - interval '1 second'")
    assert authenticate(db, "alice", PASSWORD).ok  # a lock that ended is no lock
    for _ in range(4):
        authenticate(db, "alice", "wrong password")
    assert authenticate(db, "alice", PASSWORD).ok  # a success starts the count again
    (count,) = rows(db, "SELECT failed_logins FROM operators")
    assert count == (0,)


def test_unknown_and_disabled_names_say_only_wrong_and_are_never_locked(db: Database) -> None:
    add(db)
    for _ in range(7):
        assert authenticate(db, "nobody", "wrong password").outcome == "wrong"
    assert authenticate(db, "bad name!", PASSWORD).outcome == "wrong"
    assert authenticate(db, "alice", "").outcome == "wrong"
    assert may_act(db, "alice")
    with db.transaction() as conn:
        assert store.disable_operator(conn, "alice")
    assert authenticate(db, "alice", PASSWORD).outcome == "wrong"
    assert not may_act(db, "alice") and not may_act(db, "nobody")


def test_the_audit_log_keeps_who_what_on_what_and_how_it_ended(db: Database) -> None:
    audit(db, operator="alice", action="sign_in", target=None, outcome="ok")
    audit(
        db,
        operator="alice",
        action="resume_submission",
        target="2088000000000001",
        outcome="refused",
        detail="not halted",
    )
    with db.transaction() as conn:
        latest = store.latest_audit(conn, limit=10)
        about = store.latest_audit(conn, target="2088000000000001")
        with pytest.raises(ValueError, match="outcome"):
            store.append_audit(conn, operator="a", action="b", target=None, outcome="meh")
    assert [(e.action, e.outcome) for e in latest] == [
        ("resume_submission", "refused"),
        ("sign_in", "ok"),
    ]
    assert [e.detail for e in about] == ["not halted"]
    assert latest[0].at >= latest[1].at
