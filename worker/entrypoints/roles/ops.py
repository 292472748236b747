"""`refund-worker status`: what the ledger knows about a refund, a batch, or overall."""

from __future__ import annotations

import argparse
import json
from typing import Any

from worker.adapters.postgres import status
from worker.adapters.postgres.pool import Database
from worker.domain.errors import DatabaseUnavailable
from worker.entrypoints.roles._common import boot


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("what", choices=("refund", "batch", "summary"), help="what to show")
    parser.add_argument("id", nargs="?", help="refund_id or batch_no")


def collect(db: Database, what: str, ident: str | None) -> dict[str, Any]:
    with db.transaction() as conn:
        if what == "refund":
            return status.refund_status(conn, str(ident))
        if what == "batch":
            return status.batch_status(conn, str(ident))
        return status.summary(conn)


def run(args: argparse.Namespace) -> int:
    settings = boot("status")
    if args.what != "summary" and not args.id:
        print(f"refund-worker status {args.what}: an id is required")
        return 2
    db = Database(settings.database_url, max_size=1)
    try:
        result = collect(db, args.what, args.id)
    except DatabaseUnavailable as exc:
        print(f"refund-worker status: {exc}")
        return 1
    finally:
        db.close()
    print(json.dumps(result, indent=2, default=str, ensure_ascii=False))
    missing = args.what != "summary" and result.get(args.what) is None
    return 1 if missing else 0
