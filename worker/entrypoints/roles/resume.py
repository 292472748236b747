"""`refund-worker resume`: after fixing a configuration error, resume submission."""

from __future__ import annotations

import argparse

from worker.adapters.postgres.pool import Database
from worker.entrypoints.roles._common import boot
from worker.services.sweeper import resume_submission


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Clear the submission halt set after a configuration error (ILLEGAL_SIGN, "
        "HAS_NO_PRIVILEGE, ...) and make the held batches due again, same batch_no."
    )


def run(args: argparse.Namespace) -> int:
    settings = boot("resume")
    db = Database(settings.database_url, max_size=1)
    try:
        batches = resume_submission(db)
    finally:
        db.close()
    print(f"submission resumed; {len(batches)} held batches are due again")
    return 0
