"""`refund-worker reconcile BATCH_NO`: ask the gateway now and apply what it says.

The same code path as the scheduler's reconciliation (`worker.services.reconciler`):
the answer is stored, results it shows are applied like a notification's, and the
release rule is checked. Prints what changed.
"""

from __future__ import annotations

import argparse

from worker.entrypoints import runtime
from worker.entrypoints.roles._common import boot
from worker.services.reconciler import reconcile_batch


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("batch_no", help="the batch to query")


def run(args: argparse.Namespace) -> int:
    settings = boot("reconcile")
    rt = runtime.current()
    try:
        report = reconcile_batch(
            rt.db,
            rt.query_client,
            args.batch_no,
            clock=rt.clock,
            release_after_seconds=settings.reconcile_release_after_seconds,
            purpose="operator",
        )
    finally:
        rt.close()
    print(f"batch {report.batch_no}: gateway answered {report.answer}")
    print(f"state: {report.state_before} -> {report.state_after}")
    for change in report.changes:
        print(f"  {change}")
    return 0 if report.state_before is not None else 1
