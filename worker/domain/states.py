"""The states a refund and a batch go through (the ledger's CHECK constraints name the same).

Refund: `pending -> batched -> submitted -> succeeded | failed`, `pending -> rejected`;
a refund goes back to `pending` only when its batch was certainly not taken by the
gateway (`worker/domain/policy/`). States only move forward otherwise.

Batch: `ready -> submitting -> accepted -> completed`, with `retry` and `unknown`
(the gateway may hold it) while attempts go on, `held` for an operator, and the
ends `refused`, `abandoned` and `released` for a batch whose refunds went back to
pending.
"""

from __future__ import annotations

import enum


class RefundState(enum.StrEnum):
    PENDING = "pending"
    BATCHED = "batched"
    SUBMITTED = "submitted"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REJECTED = "rejected"


class BatchState(enum.StrEnum):
    READY = "ready"
    SUBMITTING = "submitting"
    RETRY = "retry"
    UNKNOWN = "unknown"
    ACCEPTED = "accepted"
    HELD = "held"
    REFUSED = "refused"
    ABANDONED = "abandoned"
    COMPLETED = "completed"
    RELEASED = "released"


# Refunds not final yet.
OPEN_REFUNDS = frozenset({RefundState.PENDING, RefundState.BATCHED, RefundState.SUBMITTED})
# Batches whose refunds went back to pending: the gateway never took them.
RELEASED_BATCHES = frozenset({BatchState.REFUSED, BatchState.ABANDONED, BatchState.RELEASED})

# Flags about a batch that is already closed: a result came for a batch whose refunds were
# released (one may be paid twice). They override any other flag and are shown (gauge,
# `batches --flagged`) whatever the batch's state, until an operator clears them.
CLOSED_BATCH_FLAGS = frozenset({"notification_for_released_batch"})
# Batches the gateway may hold and whose result is not known yet.
RECONCILABLE_BATCHES = frozenset({BatchState.ACCEPTED, BatchState.UNKNOWN})
# Batches that may still be attempted.
SUBMITTABLE_BATCHES = frozenset(
    {BatchState.READY, BatchState.RETRY, BatchState.UNKNOWN, BatchState.SUBMITTING}
)
