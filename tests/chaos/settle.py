"""The end of a chaos run: waiting until nothing moves, and gathering what happened.

`settle` waits until every valid refund has its event and the ledger, outbox,
sandbox and queues are quiet (`quiet`); `final_state` gathers the ledger, the
gateway's books, the dead letters and the events for `tests.chaos.checks`;
`log_alarms` lists the critical log lines of the run (`ALARMS`). Moved out of
`tests.chaos.harness`, which drives a run and calls them.
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import TYPE_CHECKING

from devtools.devstack import Stack
from tests.chaos.checks import FinalState
from tests.chaos.openapi_books import gather
from tests.chaos.traffic import drain_queue

if TYPE_CHECKING:
    from tests.chaos.harness import Run

__all__ = ["ALARMS", "final_state", "log_alarms", "quiet", "settle"]


def settle(run: Run) -> float | None:
    """Wait until every refund has its event and nothing moves; the moment it did, or None.

    "Nothing moves" must be seen twice in a row with the same dead-letter count, so a
    message still in an intake micro-batch is not missed.
    """
    assert run.collector is not None
    deadline = run.started + run.profile.deadline
    valid = set(run.load.valid)
    previous: int | None = None
    while time.monotonic() < deadline:
        seen, _ = run.collector.snapshot()
        signature = quiet(run) if valid <= seen else None
        if signature is not None and signature == previous:
            return time.monotonic()
        previous = signature
        time.sleep(0.5)
    return None


def quiet(run: Run) -> int | None:
    """None while anything is in flight; else the dead-letter count.

    In flight: refunds or batches open in the ledger, outbox rows, notifications the
    gateway still has to deliver (mapi and OpenAPI), messages ready in any queue, events
    still arriving.
    """
    assert run.collector is not None
    try:
        open_rows = run.query(
            "SELECT (SELECT count(*) FROM refunds WHERE state NOT IN"
            " ('succeeded', 'failed', 'rejected')),"
            " (SELECT count(*) FROM batches WHERE state NOT IN"
            " ('completed', 'refused', 'abandoned')),"
            " (SELECT count(*) FROM outbox)",
            timeout=5,
        )[0]
        if any(open_rows):
            return None
        summary = run.sandbox.summary()
        if summary["notifications"]["pending"] or summary["openapi"]["notifications"]["pending"]:
            return None
        depths = run.vhost.queue_depths()
    except Exception:  # a server still coming back: not quiet yet
        return None
    dead_letters = depths.pop(run.stack.topology.dead_letter_queue, 0)
    if any(depths.values()) or run.collector.quiet_for() < 1.0:
        return None
    return dead_letters


def final_state(run: Run) -> FinalState:
    assert run.collector is not None and run.publisher is not None
    refunds = {
        str(r[0]): (str(r[1]), r[2], r[3], str(r[4]), Decimal(r[5]))
        for r in run.query("SELECT refund_id, state, code, batch_no, trade_no, amount FROM refunds")
    }
    batches = {
        str(r[0]): (str(r[1]), bool(r[2]), r[3], r[4])
        for r in run.query(
            "SELECT batch_no, state, maybe_sent, last_error, operator_flag FROM batches"
        )
    }
    memberships: dict[str, list[str]] = {}
    for refund_id, batch_no in run.query(
        "SELECT i.refund_id, i.batch_no FROM batch_items i JOIN batches b USING (batch_no)"
        " ORDER BY b.created_at, b.batch_no"
    ):
        memberships.setdefault(str(refund_id), []).append(str(batch_no))
    outbox = int(run.query("SELECT count(*) FROM outbox")[0][0])
    trades = run.sandbox.ledger()["trades"]
    executions = {
        trade: [(e["batch_no"], Decimal(e["amount"])) for e in view["executions"]]
        for trade, view in trades.items()
        if view["executions"]
    }
    dead = drain_queue(run.vhost.url, run.stack.topology.dead_letter_queue)
    depths = run.vhost.queue_depths()
    depths.update({f"{q} (unacked)": n for q, n in run.vhost.unacked().items()})
    events, observer_redeliveries = run.collector.events()
    if observer_redeliveries:
        run.notes["observer_redeliveries"] = observer_redeliveries
    summary = run.sandbox.summary()
    return FinalState(
        refunds=refunds,
        batches=batches,
        memberships=memberships,
        outbox=outbox,
        events=events,
        dead_letters=dead,
        queue_depths=depths,
        executions=executions,
        sandbox_summary=summary,
        publish_attempts=run.publisher.attempts,
        openapi=gather(run.query, run.sandbox.openapi_ledger(), summary),
    )


ALARMS = (
    "notify.for_released_batch",
    "submission.halted",
    "openapi.channel_halted",
    "openapi.held",
)


def log_alarms(stack: Stack) -> list[str]:
    """Critical log lines (a result for a released batch, submission halted)."""
    alarms = []
    for line in stack.log_lines():
        ours = str(line.get("logger", "")).startswith("worker")
        if (ours and line.get("level") == "critical") or line.get("event") in ALARMS:
            alarms.append(f"log alarm {line.get('event')} batch_no={line.get('batch_no')}")
    return alarms[:20]
