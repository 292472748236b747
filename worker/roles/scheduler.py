"""`refund-worker scheduler`: the packer and the sweeps.

Every tick it cuts the batches that are due and hands them to the submission
queue; every sweep interval it re-drives batches whose next attempt is due,
flags batches whose notification is overdue, and reports waiting refunds.
Several replicas may run: the packer takes an advisory lock, the sweeps are
single UPDATE statements.
"""

from __future__ import annotations

import argparse
import time

import structlog

from worker import jobs, runtime
from worker.roles._common import boot, run_loop, stop_on_signals
from worker.services.packing import pack_pending
from worker.services.sweeper import sweep

log = structlog.get_logger("worker.scheduler")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tick", type=float, default=0.1, help="seconds between packing rounds")
    parser.add_argument("--sweep-every", type=float, default=1.0, help="seconds between sweeps")


def run(args: argparse.Namespace) -> int:
    settings = boot("scheduler")
    rt = runtime.current()
    stop = stop_on_signals()
    last_sweep = 0.0
    last_report = 0.0

    def step() -> float:
        nonlocal last_sweep, last_report
        batch_nos = pack_pending(
            rt.db,
            max_items=settings.batch_max_items,
            max_wait=settings.batch_max_wait_seconds,
            charset=settings.input_charset,
            clock=rt.clock,
        )
        for batch_no in batch_nos:
            jobs.enqueue_submit(settings, batch_no)
        now = time.monotonic()
        if now - last_sweep >= args.sweep_every:
            last_sweep = now
            report = sweep(rt.db, lease_seconds=rt.submit_lease_seconds)
            for batch_no in report.due:
                jobs.enqueue_submit(settings, batch_no)
            if report.waiting and now - last_report >= 30:
                last_report = now
                log.info(
                    "refunds.waiting",
                    count=report.waiting,
                    oldest_seconds=round(report.oldest_waiting_seconds, 1),
                    by_state=report.by_state,
                )
        return 0.0 if batch_nos else args.tick

    run_loop("scheduler", step, stop)
    rt.close()
    log.info("role.stopped")
    return 0
