"""The refund ledger in PostgreSQL: every statement the worker runs, by table.

This module is the one name services use (`from worker.adapters.postgres import ledger`);
the statements live in one module per table or concern:

* `records`       -- the plain records the statements take and return;
* `refunds`       -- intake and the per-trade tally, packing, results, releases;
* `batches`       -- numbering, claims, attempts, schedules, sweeps, listings;
* `control`       -- the per-merchant submission halt;
* `notifications` -- the inbox of notifications and the bank-card return results;
* `outbox`        -- `refund.completed` rows for the relay;
* `evidence`      -- query answers, refunds made elsewhere, operator decisions;
* `status`        -- what `refund-worker status` and the ledger gauges read.

The operator console's reads (`console_reads`, built on `console_history` and
`console_records`) are not services' statements and are imported on their own.

Statements are set-based (one JSON parameter for a micro-batch or a 1000-item batch),
so a batch costs a handful of round trips, not one per refund.
"""

from __future__ import annotations

from worker.adapters.postgres.batches import (
    OPEN_BATCH_STATES,
    RECONCILABLE,
    batch_items,
    claim_due_queries,
    create_batch,
    db_now,
    flag_batch,
    flag_overdue,
    in_flight_within,
    last_code,
    lock_batch,
    lock_batch_view,
    mark_accepted,
    merchant_in_flight,
    next_batch_serial,
    note_attempt,
    note_flagged,
    record_attempt,
    redrive_due,
    resume_held,
    schedule_attempt,
    schedule_query,
    try_packer_lock,
    update_batch,
)
from worker.adapters.postgres.control import (
    HALT_PREFIX,
    clear_submission_halt,
    set_submission_halt,
    submission_halt,
    submission_halts,
)
from worker.adapters.postgres.evidence import (
    batch_history,
    list_batches,
    our_batch_nos,
    queries_since,
    record_decision,
    record_gateway_refunds,
    record_query,
)
from worker.adapters.postgres.notifications import (
    batch_refund_ids,
    lock_notification,
    notify_ids_with_outcome,
    refund_dback_results,
    refund_for_trade_in_batch,
    set_notification_outcome,
    store_dback,
    store_notification,
    unapplied_notifications,
)
from worker.adapters.postgres.outbox import (
    COMPLETED_ROUTING_KEY,
    insert_outbox,
    listen_for_outbox,
    take_outbox,
)
from worker.adapters.postgres.records import (
    Batch,
    BatchItem,
    BatchMember,
    BatchView,
    Completion,
    NewRefund,
    PendingRefund,
    QueryRecord,
)
from worker.adapters.postgres.refunds import (
    IN_BATCH,
    apply_results,
    batch_members,
    completions_for,
    existing_hashes,
    finish_refunds,
    insert_refunds,
    lock_trades,
    mark_submitted,
    open_in_batch,
    pending_refunds,
    return_to_pending,
    trade_tallies,
    undo_batch_attempt,
    waiting_by_state,
)

__all__ = [
    "COMPLETED_ROUTING_KEY",
    "HALT_PREFIX",
    "IN_BATCH",
    "OPEN_BATCH_STATES",
    "RECONCILABLE",
    "Batch",
    "BatchItem",
    "BatchMember",
    "BatchView",
    "Completion",
    "NewRefund",
    "PendingRefund",
    "QueryRecord",
    "apply_results",
    "batch_history",
    "batch_items",
    "batch_members",
    "batch_refund_ids",
    "claim_due_queries",
    "clear_submission_halt",
    "completions_for",
    "create_batch",
    "db_now",
    "existing_hashes",
    "finish_refunds",
    "flag_batch",
    "flag_overdue",
    "in_flight_within",
    "insert_outbox",
    "insert_refunds",
    "last_code",
    "list_batches",
    "listen_for_outbox",
    "lock_batch",
    "lock_batch_view",
    "lock_notification",
    "lock_trades",
    "mark_accepted",
    "mark_submitted",
    "merchant_in_flight",
    "next_batch_serial",
    "note_attempt",
    "note_flagged",
    "notify_ids_with_outcome",
    "open_in_batch",
    "our_batch_nos",
    "pending_refunds",
    "queries_since",
    "record_attempt",
    "record_decision",
    "record_gateway_refunds",
    "record_query",
    "redrive_due",
    "refund_dback_results",
    "refund_for_trade_in_batch",
    "resume_held",
    "return_to_pending",
    "schedule_attempt",
    "schedule_query",
    "set_notification_outcome",
    "set_submission_halt",
    "store_dback",
    "store_notification",
    "submission_halt",
    "submission_halts",
    "take_outbox",
    "trade_tallies",
    "try_packer_lock",
    "unapplied_notifications",
    "undo_batch_attempt",
    "update_batch",
    "waiting_by_state",
]
