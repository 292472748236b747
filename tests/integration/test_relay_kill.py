"""The relay SIGKILLed at each step of its round loses no event.

A real `refund-worker relay` process (`tests.support.relay_steps`, the role with one
patch that stops it at a chosen step) is killed with SIGKILL after taking the rows and
before publishing, after publishing before it saw the confirms, and after the
confirms before the commit. A second, ordinary relay then drains the outbox. Every
outbox row must have been published at least once, and the only duplicates are the
killed round's rows, again under the same event_id and with the same body.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from worker.adapters.postgres import ledger
from worker.adapters.postgres.pool import Database
from worker.adapters.rabbitmq import COMPLETED, BusConnection, Topology, delete_topology

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
ROWS = 2500
BATCH = 1000


@pytest.fixture
def topology() -> Iterator[Topology]:
    topo = Topology.for_exchange(f"test-relay-kill-{uuid.uuid4().hex[:8]}")
    with BusConnection(AMQP_URL) as bus:
        bus.declare_bus(topo)
        channel = bus.channel()
        channel.queue_declare(f"{topo.exchange}.observer", durable=True)
        channel.queue_bind(f"{topo.exchange}.observer", topo.exchange, routing_key=COMPLETED)
    yield topo
    with BusConnection(AMQP_URL) as bus:
        bus.channel().queue_delete(f"{topo.exchange}.observer")
    delete_topology(AMQP_URL, topo)


def _env(database_url: str, topology: Topology) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "DATABASE_URL": database_url,
            "AMQP_URL": AMQP_URL,
            "REFUND_EXCHANGE": topology.exchange,
            "ALIPAY_MD5_KEY": secrets.token_hex(16),
            "LOG_FORMAT": "json",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.pop("METRICS_PORT", None)
    return env


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", *args, "--batch", str(BATCH), "--idle", "0.1"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _kill(process: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
    if process.poll() is None:
        os.killpg(process.pid, sig)
    process.wait(30)


def _wait_until(
    predicate: Callable[[], bool],
    what: str,
    log: Path,
    process: subprocess.Popen[bytes],
    timeout: float = 60,
) -> None:
    """Poll `predicate`; fail at once if `process` exited, with its log."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached; log:\n{log.read_text()[-3000:]}")
        time.sleep(0.05)


def _fill(db: Database) -> dict[str, str]:
    events = [
        (
            str(uuid.uuid5(uuid.NAMESPACE_URL, f"kill-{n}")),
            ledger.COMPLETED_ROUTING_KEY,
            json.dumps({"refund_id": f"r-{n:05d}", "note": "退款完成"}, ensure_ascii=False),
        )
        for n in range(ROWS)
    ]
    with db.transaction() as conn:
        ledger.insert_outbox(conn, events)
    return {event_id: body for event_id, _, body in events}


def _outbox_count(db: Database) -> int:
    with db.transaction() as conn:
        row = conn.execute("SELECT count(*) FROM outbox").fetchone()
    assert row is not None
    return int(row[0])


def _take_observed(queue: str, into: list[tuple[str, str]]) -> int:
    with BusConnection(AMQP_URL) as bus:
        channel = bus.channel()
        while True:
            method, properties, body = channel.basic_get(queue, auto_ack=True)
            if method is None:
                return len(into)
            into.append((str(properties.message_id), body.decode("utf-8")))


@pytest.mark.parametrize("step", ["taken", "published", "confirmed"])
def test_a_relay_killed_at_each_step_loses_no_event(
    step: str, db: Database, database_url: str, topology: Topology, tmp_path: Path
) -> None:
    queue = f"{topology.exchange}.observer"
    expected = _fill(db)
    env = _env(database_url, topology)
    log = tmp_path / "relay.log"
    marker = tmp_path / "stopped"

    stopped = _start(["tests.support.relay_steps", step, str(marker)], env, log)
    try:
        _wait_until(marker.exists, f"the relay stopping at {step!r}", log, stopped)
    finally:
        _kill(stopped)
    observed: list[tuple[str, str]] = []
    # Killed inside its first round: its delete never committed, every row is there.
    assert _outbox_count(db) == ROWS
    at_kill = _take_observed(queue, observed)
    if step == "taken":
        assert at_kill == 0
    elif step == "published":
        assert at_kill >= 1  # the broker had confirmed some: they will come again
    else:
        assert at_kill == BATCH

    relay = _start(["worker.entrypoints.cli", "relay"], env, log)
    try:
        _wait_until(lambda: _outbox_count(db) == 0, "an empty outbox", log, relay)
    finally:
        _kill(relay, signal.SIGTERM)
    assert relay.returncode == 0
    _take_observed(queue, observed)

    counts = Counter(event_id for event_id, _ in observed)
    assert set(counts) == set(expected)  # every row published at least once
    assert all(body == expected[event_id] for event_id, body in observed)
    first_round = list(expected)[:BATCH]
    duplicated = {event_id for event_id, n in counts.items() if n > 1}
    assert duplicated <= set(first_round)  # only what the killed round had in hand
    assert all(n <= 2 for n in counts.values())
    assert len(observed) == ROWS + at_kill
