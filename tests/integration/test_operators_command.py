"""`refund-worker operators` as a person runs it, against a real database."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.support.ledger import rows
from worker.adapters.postgres.pool import Database
from worker.services.signin import authenticate

pytestmark = pytest.mark.integration


def run(database_url: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "ALIPAY_MD5_KEY": "0123456789abcdef0123456789abcdef",
        "LOG_FORMAT": "json",
    }
    return subprocess.run(
        [sys.executable, "-m", "worker.entrypoints.cli", "operators", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_add_list_unlock_and_disable(db: Database, database_url: str) -> None:
    added = run(database_url, "add", "alice", "--password-stdin", stdin="a long password 1\n")
    assert added.returncode == 0, added.stdout + added.stderr
    assert "a long password 1" not in added.stdout + added.stderr
    assert authenticate(db, "alice", "a long password 1").ok

    generated = run(database_url, "add", "bob", "--generate")
    assert generated.returncode == 0, generated.stderr
    match = re.search(r"password \(shown only now\): (\S+)", generated.stdout)
    assert match and authenticate(db, "bob", match.group(1)).ok
    assert match.group(1) not in generated.stderr  # not in any log line

    assert run(database_url, "add", "alice", "--generate").returncode == 1
    short = run(database_url, "add", "carol", "--password-stdin", stdin="short\n")
    assert short.returncode == 2 and "at least 12" in short.stdout
    assert run(database_url, "add", "bad name", "--generate").returncode == 2

    for _ in range(5):
        authenticate(db, "alice", "wrong password!")
    listed = run(database_url, "list")
    assert re.search(r"^alice .* failures=0 locked_until=\d{4}-", listed.stdout, re.M), listed
    assert run(database_url, "unlock", "alice").returncode == 0
    assert authenticate(db, "alice", "a long password 1").ok
    assert run(database_url, "disable", "bob").returncode == 0
    assert authenticate(db, "bob", match.group(1)).outcome == "wrong"
    assert run(database_url, "unlock", "nobody").returncode == 1

    audit = rows(db, "SELECT action, target, outcome FROM audit_log ORDER BY id")
    assert [(a, t, o) for a, t, o in audit] == [
        ("operators.add", "alice", "ok"),
        ("operators.add", "bob", "ok"),
        ("operators.add", "alice", "refused"),
        ("operators.unlock", "alice", "ok"),
        ("operators.disable", "bob", "ok"),
        ("operators.unlock", "nobody", "refused"),
    ]
    assert all(r[0].startswith("cli:") for r in rows(db, "SELECT operator FROM audit_log"))
