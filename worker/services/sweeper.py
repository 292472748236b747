"""The scheduler's sweeps: re-drive stuck batches, flag overdue ones, report waiting refunds.

Long waits live here, in PostgreSQL due times, not in broker delays: a batch due
for another attempt has `next_attempt_at` in the past; the sweep pushes that time
forward by the re-drive interval (so it is not re-enqueued every tick) and hands
the batch_no to the submission queue.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import structlog

from worker.adapters.postgres import ledger
from worker.adapters.postgres.pool import Database
from worker.services.packing import REDRIVE_AFTER_SECONDS

log = structlog.get_logger("worker.sweeper")

# Alipay resends a notification for about 25 hours; after this an operator must look.
NOTIFICATION_OVERDUE_SECONDS = 26 * 3600


@dataclass(slots=True)
class SweepReport:
    due: list[str] = field(default_factory=list)
    overdue: list[str] = field(default_factory=list)
    waiting: int = 0
    oldest_waiting_seconds: float = 0.0
    by_state: dict[str, int] = field(default_factory=dict)


def sweep(
    db: Database,
    *,
    lease_seconds: float,
    overdue_seconds: float = NOTIFICATION_OVERDUE_SECONDS,
    redrive_seconds: float = REDRIVE_AFTER_SECONDS,
) -> SweepReport:
    report = SweepReport()
    with db.transaction() as conn:
        report.due = ledger.redrive_due(
            conn,
            redrive_seconds=redrive_seconds,
            lease_seconds=lease_seconds,
            halted=sorted(ledger.submission_halts(conn)),
        )
        report.overdue = ledger.flag_overdue(conn, overdue_seconds)
        stats = ledger.waiting_by_state(conn)
    for state, count, age in stats:
        report.by_state[state] = count
        report.waiting += count
        report.oldest_waiting_seconds = max(report.oldest_waiting_seconds, age)
    for batch_no in report.overdue:
        log.error("batch.notification_overdue", batch_no=batch_no)
    if report.due:
        log.info("batch.redriven", batches=len(report.due))
    return report


def resume_submission(
    db: Database, partner: str | None = None, *, operator: str | None = None
) -> list[str]:
    """Operator action after fixing a configuration error: clear the merchant's halt (every
    merchant's when `partner` is None) and retry its held batches, same batch_nos; the
    halt of its OpenAPI channels is cleared too and their waiting refunds are due again.
    `operator` (who asked, from the console) goes into the log line."""
    from worker.adapters.postgres import openapi

    with db.transaction() as conn:
        cleared = ledger.clear_submission_halt(conn, partner)
        batches = ledger.resume_held(conn, partner)
        openapi_cleared = openapi.clear_openapi_halt(conn, partner)
    log.warning(
        "submission.resumed",
        merchant=partner,
        cleared=cleared,
        openapi_cleared=openapi_cleared,
        batches=len(batches),
        operator=operator,
    )
    return batches
