"""The packer: turn pending refunds into batches that respect the gateway's rules.

One packer at a time across replicas (a transaction-scoped advisory lock). A batch
holds the refunds of one merchant only (its partner id signs it); it is cut when
`max_items` refunds are waiting for it or when its oldest refund has waited `max_wait`
seconds. The batch, its items as they will be sent and the
refunds' move to `batched` commit together, so a crash loses nothing; the
submission job is enqueued after commit and re-driven by the sweeper if lost.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from itertools import groupby

import structlog

from worker.adapters.postgres import ledger
from worker.adapters.postgres.pool import PACKER_LOCK, Connection, Database
from worker.domain.merchants import Merchants
from worker.mapi import BEIJING, make_batch_no, pack_batches, sanitize_reason
from worker.observability.metrics import BATCH_ITEMS

log = structlog.get_logger("worker.packer")

Clock = Callable[[], datetime]

# How many pending refunds one packing round looks at, in multiples of max_items.
LOOKAHEAD_BATCHES = 20

# Sent when a request has no reason: the gateway's own examples always carry one.
DEFAULT_REASON = "协商退款"

# Until the submission job has run, the sweeper waits this long before re-driving.
REDRIVE_AFTER_SECONDS = 60.0


def new_batch(
    conn: Connection,
    now: datetime,
    items: list[ledger.BatchItem],
    due: datetime,
    partner: str,
    *,
    awaiting_approval: bool = False,
) -> str:
    """Number and record one batch of one merchant (used by the packer and when a refused
    batch is split). The serial is one sequence for every merchant, so a batch_no is
    unique across the deployment, and so per partner. `awaiting_approval`: the merchant
    is on the password service and the batch waits for an operator."""
    batch_no = make_batch_no(now, ledger.next_batch_serial(conn))
    ledger.create_batch(
        conn,
        batch_no,
        now.astimezone(BEIJING).date(),
        items,
        due,
        partner=partner,
        awaiting_approval=awaiting_approval,
    )
    return batch_no


def pack_pending(
    db: Database,
    *,
    max_items: int,
    max_wait: float,
    merchants: Merchants,
    clock: Clock,
    force: bool = False,
) -> list[str]:
    """Cut the batches that are due; returns the batch_nos to be enqueued for submission.

    Refunds of a merchant the deployment no longer serves stay pending, unread (they show
    in `refund_waiting{merchant=...}`): nothing could sign their batch. A batch of a
    merchant on the password service is cut `awaiting_approval` and not returned: an
    operator approves it in the console (`worker/services/approvals.py`).
    """
    created: list[tuple[str, str, list[ledger.BatchItem], bool]] = []
    with db.transaction() as conn:
        if not ledger.try_packer_lock(conn, PACKER_LOCK):
            return []
        served = [m.partner for m in merchants]
        pending = ledger.pending_refunds(conn, max_items * LOOKAHEAD_BATCHES, served)
        if not pending:
            return []
        db_time = ledger.db_now(conn)
        cut = db_time - timedelta(seconds=max_wait)
        now = clock()
        due = db_time + timedelta(seconds=REDRIVE_AFTER_SECONDS)
        by_merchant = sorted(pending, key=lambda p: p.partner)  # stable: oldest first within
        for partner, rows in groupby(by_merchant, key=lambda p: p.partner):
            merchant = merchants.get(partner)
            assert merchant is not None  # pending_refunds read only the served merchants
            for group in pack_batches(list(rows), max_items=max_items):
                oldest = min(p.received_at for p in group)
                ready = force or len(group) >= max_items or oldest <= cut
                if not ready:
                    continue
                items = [
                    ledger.BatchItem(
                        p.refund_id,
                        p.trade_no,
                        p.amount,
                        sanitize_reason(p.reason or DEFAULT_REASON, merchant.charset),
                    )
                    for p in group
                ]
                approval = merchant.needs_approval
                batch_no = new_batch(conn, now, items, due, partner, awaiting_approval=approval)
                created.append((batch_no, partner, items, approval))

    for batch_no, partner, items, approval in created:
        BATCH_ITEMS.observe(len(items))
        log.info("batch.created", batch_no=batch_no, merchant=partner, items=len(items))
        if approval:
            log.info("batch.awaiting_approval", batch_no=batch_no, merchant=partner)
        for item in items:
            log.info(
                "refund.batched",
                refund_id=item.refund_id,
                trade_no=item.trade_no,
                batch_no=batch_no,
                merchant=partner,
            )
    return [batch_no for batch_no, _, _, approval in created if not approval]
