"""The archive sweep: final refunds older than the retention leave the hot tables.

`LEDGER_RETENTION_DAYS` (default 400: depending on the contract, Alipay accepts a
refund up to about a year after the payment) bounds what the hot tables hold, so
their indexes and the sweeps over them stay the size of the recent ledger however
long the worker runs. A round moves at most `limit` refunds in one transaction
(`worker/adapters/postgres/archive.py` decides which may move); the scheduler runs
rounds back to back while they come back full, then every `ARCHIVE_EVERY_SECONDS`.
Nothing is deleted: intake's duplicate check, a trade's tally and
`refund-worker status refund ID` read the archive too.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import structlog

from worker.adapters.postgres import archive
from worker.adapters.postgres.pool import Database

log = structlog.get_logger("worker.archiver")

ARCHIVE_EVERY_SECONDS = 60.0
ARCHIVE_CHUNK = 5000


def archive_round(
    db: Database,
    *,
    retention_days: int,
    clock: Callable[[], datetime],
    limit: int = ARCHIVE_CHUNK,
) -> int:
    """Move up to `limit` refunds completed more than `retention_days` ago; returns how many."""
    cutoff = clock() - timedelta(days=retention_days)
    with db.transaction() as conn:
        moved = archive.move_to_archive(conn, archive.archive_candidates(conn, cutoff, limit))
    if moved:
        log.info(
            "ledger.archived",
            refunds=moved,
            retention_days=retention_days,
            cutoff=cutoff.isoformat(),
        )
    return moved
