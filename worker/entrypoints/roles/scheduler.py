"""`refund-worker scheduler`: the packer and the sweeps.

Every tick it cuts the batches that are due and hands them to the submission
queue; every sweep interval it re-drives batches whose next attempt is due,
flags batches whose notification is overdue, hands batches whose query is due
to the reconciliation queue, applies stored notifications (mapi and OpenAPI) left unapplied,
moves final refunds older than `LEDGER_RETENTION_DAYS` to the archive, and reports waiting
refunds.
Several replicas may run: the packer takes an advisory lock, the sweeps are
single UPDATE statements. A batch the broker could not take (it was away) is
kept and handed over again on the next tick, not left to the next re-drive.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Iterable

import structlog

from worker.adapters.dramatiq import jobs
from worker.entrypoints import runtime
from worker.entrypoints.roles._common import boot, run_loop, stop_on_signals
from worker.services.approvals import expire_unapproved, waiting_report
from worker.services.archiver import ARCHIVE_CHUNK, ARCHIVE_EVERY_SECONDS, archive_round
from worker.services.notifications import sweep_unapplied
from worker.services.openapi_notifications import sweep_unapplied_openapi
from worker.services.openapi_submission import due_openapi
from worker.services.packing import pack_pending
from worker.services.reconciler import claim_due
from worker.services.sweeper import sweep

log = structlog.get_logger("worker.scheduler")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tick", type=float, default=0.1, help="seconds between packing rounds")
    parser.add_argument("--sweep-every", type=float, default=1.0, help="seconds between sweeps")


class Handoff:
    """Batch numbers on their way to the submission queue, kept until the broker took each.

    The packer commits a batch before its job is enqueued, so when the broker is away
    the enqueue fails after the batch exists. Forgetting it would leave the batch to
    the sweeper's re-drive, a minute later (`REDRIVE_AFTER_SECONDS`); kept here, it
    goes out on the first step after the broker answers again. Only this memory is
    lost if the scheduler dies, and the sweeper still covers that.
    """

    def __init__(self, enqueue: Callable[[str], None]) -> None:
        self._enqueue = enqueue
        self._waiting: dict[str, None] = {}  # an ordered set: oldest first

    def __len__(self) -> int:
        return len(self._waiting)

    def send(self, batch_nos: Iterable[str] = ()) -> None:
        """Add `batch_nos`, then enqueue everything waiting, oldest first.

        An enqueue that fails (`BusUnavailable`) raises; that batch and the ones
        after it stay waiting for the next call.
        """
        for batch_no in batch_nos:
            self._waiting.setdefault(batch_no)
        while self._waiting:
            batch_no = next(iter(self._waiting))
            self._enqueue(batch_no)
            del self._waiting[batch_no]


def run(args: argparse.Namespace) -> int:
    settings = boot("scheduler")
    rt = runtime.current()
    stop = stop_on_signals()
    last_sweep = 0.0
    last_report = 0.0
    last_archive = 0.0
    archive_full = False  # the last round moved a whole chunk: more are waiting
    handoff = Handoff(lambda batch_no: jobs.enqueue_submit(settings, batch_no))
    reconcile = Handoff(lambda batch_no: jobs.enqueue_reconcile(settings, batch_no))
    openapi = Handoff(lambda refund_id: jobs.enqueue_openapi(settings, refund_id))

    def step() -> float:
        nonlocal last_sweep, last_report, last_archive, archive_full
        batch_nos = pack_pending(
            rt.db,
            max_items=settings.batch_max_items,
            max_wait=settings.batch_max_wait_seconds,
            merchants=rt.merchants,
            clock=rt.clock,
        )
        handoff.send(batch_nos)
        # OpenAPI refunds: new ones, retries after their backoff, queries due, lost jobs.
        openapi.send(due_openapi(rt.db, lease_seconds=rt.submit_lease_seconds))
        now = time.monotonic()
        if now - last_sweep >= args.sweep_every:
            last_sweep = now
            report = sweep(rt.db, lease_seconds=rt.submit_lease_seconds)
            handoff.send(report.due)
            reconcile.send(claim_due(rt.db, reconcile_after=settings.reconcile_after_seconds))
            sweep_unapplied(rt.db)
            sweep_unapplied_openapi(rt.db, rt.merchants)
            expire_unapproved(rt.db, clock=rt.clock)
            if archive_full or now - last_archive >= ARCHIVE_EVERY_SECONDS:
                last_archive = now
                moved = archive_round(
                    rt.db, retention_days=settings.ledger_retention_days, clock=rt.clock
                )
                archive_full = moved >= ARCHIVE_CHUNK
            if report.waiting and now - last_report >= 30:
                last_report = now
                log.info(
                    "refunds.waiting",
                    count=report.waiting,
                    oldest_seconds=round(report.oldest_waiting_seconds, 1),
                    by_state=report.by_state,
                )
                waiting_report(rt.db)
        return 0.0 if batch_nos else args.tick

    run_loop("scheduler", step, stop)
    rt.close()
    log.info("role.stopped")
    return 0
