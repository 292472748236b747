"""`refund-worker batches`: one line per batch, for the people on call.

`--waiting` shows batches not settled yet, `--flagged` those with an operator flag,
`--overdue` those older than the notification deadline (26 h); `--json` prints the
same rows as JSON. Each line: batch_no, state, age, attempts, queries, flag, and its
refunds by state.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from worker.adapters.postgres import ledger
from worker.adapters.postgres.pool import Database
from worker.domain.errors import DatabaseUnavailable
from worker.entrypoints.roles._common import boot
from worker.services.sweeper import NOTIFICATION_OVERDUE_SECONDS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--waiting", action="store_true", help="batches not settled yet")
    which.add_argument("--flagged", action="store_true", help="batches an operator must look at")
    which.add_argument(
        "--overdue", action="store_true", help="open batches older than the notification deadline"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of lines")
    parser.add_argument("--limit", type=int, default=200, help="at most this many (default 200)")


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    if seconds < 172800:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def format_line(row: dict[str, Any]) -> str:
    refunds = ",".join(f"{k}={v}" for k, v in sorted(row["refunds"].items())) or "-"
    return (
        f"{row['batch_no']:<28} {row['state']:<10} {_age(row['age_seconds']):>6}"
        f"  attempts={row['attempts']} queries={row['queries']}"
        f"  flag={row['operator_flag'] or '-'}  refunds: {refunds}"
    )


def run(args: argparse.Namespace) -> int:
    settings = boot("batches")
    db = Database(settings.database_url, max_size=1)
    try:
        with db.transaction() as conn:
            rows = ledger.list_batches(
                conn,
                waiting=args.waiting,
                flagged=args.flagged,
                overdue_seconds=NOTIFICATION_OVERDUE_SECONDS if args.overdue else None,
                limit=args.limit,
            )
    except DatabaseUnavailable as exc:
        print(f"refund-worker batches: {exc}")
        return 1
    finally:
        db.close()
    if args.json:
        print(json.dumps(rows, indent=2, default=str, ensure_ascii=False))
    else:
        for row in rows:
            print(format_line(row))
        if not rows:
            print("no batches")
    return 0
