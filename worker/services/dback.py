"""Storing bank-card return results (dback notifications) against their refund.

The raw form stays in the notification inbox; here its known fields are read
(`worker.mapi.dback`), matched to the refund sent for that trade in that batch,
stored in `dback_results` (card number reduced to its last four digits), logged
and counted. A card leg never changes a refund's state: the refund's outcome is
the batch result's.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import structlog
from prometheus_client import Counter

from worker.adapters.postgres import ledger
from worker.adapters.postgres.pool import Connection
from worker.mapi.dback import read_dback

log = structlog.get_logger("worker.notify")

DBACK_RESULTS = Counter(
    "refund_dback_results_total", "Bank-card return notifications stored, by status", ["status"]
)


def apply_dback(
    conn: Connection, notify_id: str, form: Mapping[str, str], received_at: datetime
) -> tuple[str, str | None]:
    """Store one dback notification's parsed fields; returns (outcome, detail)."""
    result = read_dback(form)
    refund_id = ledger.refund_for_trade_in_batch(conn, result.batch_no, result.trade_no)
    ledger.store_dback(
        conn,
        notify_id=notify_id,
        refund_id=refund_id,
        trade_no=result.trade_no,
        batch_no=result.batch_no,
        card_last4=result.card_last4,
        bank_name=result.bank_name,
        status=result.status,
        received_at=received_at,
    )
    DBACK_RESULTS.labels(result.status_meaning).inc()
    log.info(
        "notify.dback",
        notify_id=notify_id,
        trade_no=result.trade_no,
        batch_no=result.batch_no,
        refund_id=refund_id,
        status=result.status,
        card_last4=result.card_last4,
    )
    if refund_id is None:
        return "stored", "no refund of this trade in this batch"
    return "stored", None
