"""The states a refund and a batch go through (the ledger's CHECK constraints name the same).

Refund: `pending -> batched -> submitted -> succeeded | failed`, `pending -> rejected`;
a refund goes back to `pending` only when its batch was certainly not taken by the
gateway (`worker/domain/policy/`). States only move forward otherwise.

Batch: `ready -> submitting -> accepted -> completed`, with `retry` and `unknown`
(the gateway may hold it) while attempts go on, `held` for an operator, and the
ends `refused`, `abandoned` and `released` for a batch whose refunds went back to
pending. On the password service (`refund_fastpay_by_platform_pwd`) a batch is cut
`awaiting_approval`, becomes `approved` when an operator's browser received its
signed form (it may have been sent from then on), then `completed` by its
notification; `rejected` ends a batch an operator refused (its refunds end
`rejected`, code `OPERATOR_REJECTED`). An `awaiting_approval` batch whose Beijing
day ended was never sent: it is `abandoned` and its refunds are packed again.
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
    AWAITING_APPROVAL = "awaiting_approval"
    APPROVED = "approved"
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
    REJECTED = "rejected"


# Refunds whose outcome is known and will not change.
FINAL_REFUNDS = frozenset({RefundState.SUCCEEDED, RefundState.FAILED, RefundState.REJECTED})
# Refunds not final yet.
OPEN_REFUNDS = frozenset({RefundState.PENDING, RefundState.BATCHED, RefundState.SUBMITTED})
# Batches whose refunds went back to pending: the gateway never took them.
RELEASED_BATCHES = frozenset({BatchState.REFUSED, BatchState.ABANDONED, BatchState.RELEASED})

# Flags about a batch that is already closed: a result came for a batch whose refunds were
# released (one may be paid twice). They override any other flag and are shown (gauge,
# `batches --flagged`) whatever the batch's state, until an operator clears them.
CLOSED_BATCH_FLAGS = frozenset({"notification_for_released_batch"})
# Batches that ended without any of their refunds paid.
ENDED_BATCHES = RELEASED_BATCHES | {BatchState.REJECTED}
# Batches the gateway may hold and whose result is not known yet.
RECONCILABLE_BATCHES = frozenset({BatchState.ACCEPTED, BatchState.UNKNOWN, BatchState.APPROVED})
# The code of refunds whose batch an operator rejected in the console.
OPERATOR_REJECTED = "OPERATOR_REJECTED"
# Batches that may still be attempted.
SUBMITTABLE_BATCHES = frozenset(
    {BatchState.READY, BatchState.RETRY, BatchState.UNKNOWN, BatchState.SUBMITTING}
)
# Batches that nothing will move any more: the archive may take their final refunds
# (a batch with an operator flag stays until the flag is cleared).
CLOSED_BATCHES = ENDED_BATCHES | {BatchState.COMPLETED}
