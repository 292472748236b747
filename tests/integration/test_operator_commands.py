"""The operator commands as a person runs them: `batches`, `reconcile`, `resolve`, `status`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime

import pytest

from tests.support.ledger import accepted_batch, rows
from worker.adapters.postgres.pool import Database

pytestmark = pytest.mark.integration


def run(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "ALIPAY_MD5_KEY": "0123456789abcdef0123456789abcdef",
        # Nothing listens here: the command's own query gets no answer.
        "ALIPAY_GATEWAY_URL": "http://127.0.0.1:9/gateway.do",
        "GATEWAY_CONNECT_TIMEOUT": "1",
        "GATEWAY_READ_TIMEOUT": "1",
        "LOG_FORMAT": "json",
    }
    return subprocess.run(
        [sys.executable, "-m", "worker.entrypoints.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_batches_lists_waiting_and_flagged_batches(db: Database, database_url: str) -> None:
    batch_no, _ = accepted_batch(db)
    with db.transaction() as conn:
        conn.execute(
            "UPDATE batches SET operator_flag = 'unknown_code' WHERE batch_no = %s", (batch_no,)
        )
    listed = run(database_url, "batches", "--flagged", "--json")
    assert listed.returncode == 0, listed.stderr
    (row,) = json.loads(listed.stdout)
    assert (row["batch_no"], row["state"], row["operator_flag"], row["refunds"]) == (
        batch_no,
        "accepted",
        "unknown_code",
        {"submitted": 4},
    )
    lines = run(database_url, "batches", "--waiting")
    assert lines.returncode == 0
    assert batch_no in lines.stdout and "refunds: submitted=4" in lines.stdout
    assert run(database_url, "batches", "--overdue").stdout.strip() == "no batches"


def test_resolve_refuses_without_proof_and_stores_a_forced_decision(
    db: Database, database_url: str
) -> None:
    batch_no, _ = accepted_batch(db)
    refused = run(
        database_url,
        "resolve",
        batch_no,
        "--as",
        "not-accepted",
        "--operator",
        "alice",
        "--reason",
        "console shows nothing",
    )
    assert refused.returncode == 1
    assert "refused" in refused.stdout and "no_answer" in refused.stdout
    assert rows(db, "SELECT state FROM batches") == [("accepted",)]

    forced = run(
        database_url,
        "resolve",
        batch_no,
        "--as",
        "not-accepted",
        "--operator",
        "alice",
        "--reason",
        "Alipay support confirmed in writing",
        "--force",
    )
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert "accepted -> released (forced); 4 refunds moved" in forced.stdout
    assert '"operator.forced"' in forced.stdout + forced.stderr
    status = run(database_url, "status", "batch", batch_no)
    decisions = json.loads(status.stdout)["operator_decisions"]
    assert [(d["decision"], d["operator"], d["forced"]) for d in decisions] == [
        ("not_accepted", "alice", True)
    ]
    assert rows(db, "SELECT state, count(*) FROM refunds GROUP BY 1") == [("pending", 4)]


def test_resolve_as_accepted_and_reconcile_report_what_changed(
    db: Database, database_url: str
) -> None:
    batch_no, _ = accepted_batch(db)
    with db.transaction() as conn:
        conn.execute("UPDATE batches SET state = 'held' WHERE batch_no = %s", (batch_no,))
    done = run(
        database_url,
        "resolve",
        batch_no,
        "--as",
        "accepted",
        "--operator",
        "bob",
        "--reason",
        "seen in the merchant console",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert rows(db, "SELECT state, next_query_at <= clock_timestamp() FROM batches") == [
        ("accepted", True)
    ]
    asked = run(database_url, "reconcile", batch_no)
    assert asked.returncode == 0, asked.stdout + asked.stderr
    assert "gateway answered no_answer" in asked.stdout
    assert "state: accepted -> accepted" in asked.stdout
    assert rows(db, "SELECT purpose, answer FROM batch_queries") == [("operator", "no_answer")]
    assert datetime.now(tz=UTC) > rows(db, "SELECT last_query_at FROM batches")[0][0]
