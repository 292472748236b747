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
        halted = ledger.submission_halt(conn) is not None
        if not halted:
            rows = conn.execute(
                """
                UPDATE batches
                   SET next_attempt_at = clock_timestamp() + make_interval(secs => %(redrive)s)
                 WHERE (state IN ('ready', 'retry', 'unknown')
                        AND next_attempt_at <= clock_timestamp())
                    OR (state = 'submitting'
                        AND updated_at < clock_timestamp() - make_interval(secs => %(lease)s)
                        AND next_attempt_at <= clock_timestamp())
                RETURNING batch_no
                """,
                {"redrive": redrive_seconds, "lease": lease_seconds},
            ).fetchall()
            report.due = sorted(str(r[0]) for r in rows)
        rows = conn.execute(
            """
            UPDATE batches
               SET operator_flag = 'notification_overdue', flagged_at = clock_timestamp()
             WHERE state IN ('accepted', 'unknown', 'submitting')
               AND operator_flag IS NULL
               AND created_at < clock_timestamp() - make_interval(secs => %s)
            RETURNING batch_no
            """,
            (overdue_seconds,),
        ).fetchall()
        report.overdue = sorted(str(r[0]) for r in rows)
        stats = conn.execute(
            "SELECT state, count(*), extract(epoch FROM clock_timestamp() - min(received_at))"
            " FROM refunds WHERE state IN ('pending', 'batched', 'submitted') GROUP BY state"
        ).fetchall()
    for state, count, age in stats:
        report.by_state[str(state)] = int(count)
        report.waiting += int(count)
        report.oldest_waiting_seconds = max(report.oldest_waiting_seconds, float(age or 0))
    for batch_no in report.overdue:
        log.error("batch.notification_overdue", batch_no=batch_no)
    if report.due:
        log.info("batch.redriven", batches=len(report.due))
    return report


def resume_submission(db: Database) -> list[str]:
    """Operator action after fixing a configuration error: clear the halt, retry held batches."""
    with db.transaction() as conn:
        cleared = ledger.clear_submission_halt(conn)
        rows = conn.execute(
            "UPDATE batches SET state = 'retry', next_attempt_at = clock_timestamp(),"
            " operator_flag = NULL, updated_at = clock_timestamp()"
            " WHERE state = 'held'"
            " AND (operator_flag IS NULL OR operator_flag = 'configuration_error')"
            " RETURNING batch_no"
        ).fetchall()
    log.warning("submission.resumed", cleared=cleared, batches=len(rows))
    return [str(r[0]) for r in rows]
