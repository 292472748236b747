"""`refund-worker resume`: after fixing a configuration error, resume a merchant's submission."""

from __future__ import annotations

import argparse
import sys

from worker.adapters.postgres.pool import Database
from worker.entrypoints.roles._common import boot
from worker.services.sweeper import resume_submission


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Clear the submission halt set after a configuration error (ILLEGAL_SIGN, "
        "HAS_NO_PRIVILEGE, ...) and make the held batches due again, same batch_no."
    )
    parser.add_argument(
        "--merchant",
        help="the merchant to resume (its id or partner id); default: every halted merchant",
    )


def run(args: argparse.Namespace) -> int:
    settings = boot("resume")
    partner: str | None = None
    if args.merchant is not None:
        merchant = settings.merchants().resolve(args.merchant)
        if merchant is None:
            print(
                f"refund-worker resume: no merchant {args.merchant[:64]!r} in this deployment",
                file=sys.stderr,
            )
            return 2
        partner = merchant.partner
    db = Database(settings.database_url, max_size=1)
    try:
        batches = resume_submission(db, partner)
    finally:
        db.close()
    who = "every merchant" if partner is None else f"merchant {partner}"
    print(f"submission resumed for {who}; {len(batches)} held batches are due again")
    return 0
