"""The money-safety rules of submission, as pure functions.

Given what happened to one attempt at submitting a batch, decide what to do
next. This file is where DESIGN section 3 (invariant 1) and the error-code
handling of section 4.6 live; the submission service only carries decisions out.

The central fact is `maybe_sent`: once any attempt's outcome was unknown
(timeout, reset, 5xx, garbage, or a crash while the request was in flight), the
gateway may hold the batch, so its items must never go out under another
batch_no. Such a batch is only ever retried under the same batch_no (on the
same Beijing day) or waited on until its notification arrives.

DUPLICATE_BATCH_NO means the gateway already holds the batch_no. After an
attempt whose outcome was unknown it was ours: accepted. On a first attempt it
may still have been ours (a database restored from before the submission, or
an egress proxy that replayed the POST), so the batch is kept as maybe-sent,
flagged `duplicate_batch_no_unverified`, and resolved by a query of that
batch_no: the gateway listing these trades under it means accepted; other
trades or nothing means the number was someone else's and the items may be
re-batched.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date

from worker.mapi import CodeKind, SyncResponse, SyncStatus, classify

# How many batches one refund may go through after definite batch-level refusals
# before it is reported as failed with the gateway's code.
MAX_BATCHES_PER_REFUND = 3

# Backoff for re-attempts of one batch (seconds): base * 2^(attempt-1), capped.
RETRY_BASE_SECONDS = 0.5
RETRY_CAP_SECONDS = 60.0


class Action(enum.Enum):
    ACCEPTED = "accepted"  # the gateway has the batch: wait for its notification
    RETRY_SAME = "retry_same"  # try again later under the same batch_no
    WAIT_NOTIFY = "wait_notify"  # may be accepted but cannot be resent: wait for the notification
    # DUPLICATE_BATCH_NO on a first attempt: the number may have been ours; keep the items
    # and let a query of the batch_no show whether the gateway holds these trades under it
    VERIFY_DUPLICATE = "verify_duplicate"
    HALT = "halt"  # merchant configuration is wrong: stop all submission, keep the batch
    HOLD = "hold"  # an answer the worker does not understand: keep this batch for an operator
    SPLIT = "split"  # definitely refused because of some item: split into halves, new batch_nos
    FAIL_ITEM = "fail_item"  # a single-item batch definitely refused: that refund failed
    REBATCH = "rebatch"  # definitely not accepted, items fine: back to pending, new batch_no later


class Outcome(enum.Enum):
    ANSWERED = "answered"  # the gateway answered T, P or F
    NOT_SENT = "not_sent"  # the request certainly did not reach the gateway
    UNKNOWN = "unknown"  # the gateway may or may not have received it


@dataclass(frozen=True, slots=True)
class Attempt:
    """What one submission attempt produced."""

    outcome: Outcome
    response: SyncResponse | None = None
    error: str = ""

    @property
    def code(self) -> str | None:
        return self.response.error if self.response is not None else None


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    reason: str
    code: str | None = None
    operator_flag: str | None = None


def decide_before_send(*, batch_day: date, today: date, maybe_sent: bool) -> Decision | None:
    """The Beijing-day rule (DESIGN 4.2); None means: go ahead and send.

    A batch_no carries its day and is only valid on that day. A batch that may have
    been accepted is never renumbered: it waits for its notification (Alipay resends
    for about 25 hours) and the sweeper flags it for an operator if none comes. A
    batch that certainly never reached the gateway is safe to renumber.
    """
    if batch_day == today:
        return None
    if maybe_sent:
        return Decision(
            Action.WAIT_NOTIFY,
            "batch day is over and an earlier attempt's outcome is unknown",
        )
    return Decision(Action.REBATCH, "batch day is over and the gateway never took the batch")


def decide(
    attempt: Attempt,
    *,
    maybe_sent_before: bool,
    attempts: int,
    item_count: int,
    refund_batches: int,
) -> Decision:
    """What to do after an attempt.

    `maybe_sent_before`: some earlier attempt of this batch_no had an unknown outcome.
    `attempts`: attempts so far, this one included.
    `refund_batches`: for a single-item batch, how many batches its refund has been in.
    """
    if attempt.outcome is Outcome.NOT_SENT:
        return Decision(Action.RETRY_SAME, f"not sent: {attempt.error}")
    if attempt.outcome is Outcome.UNKNOWN or attempt.response is None:
        return Decision(Action.RETRY_SAME, f"outcome unknown: {attempt.error}")

    response = attempt.response
    if response.status in (SyncStatus.ACCEPTED, SyncStatus.PROCESSING):
        return Decision(Action.ACCEPTED, f"gateway answered {response.status.name}")
    if response.status is SyncStatus.UNKNOWN:
        return Decision(Action.RETRY_SAME, f"unparseable answer: {response.detail}")

    code = response.error or "UNKNOWN_ERROR"
    kind = classify(code)

    if kind is CodeKind.DUPLICATE_BATCH:
        if maybe_sent_before:
            return Decision(Action.ACCEPTED, "DUPLICATE_BATCH_NO after an unknown outcome", code)
        if attempts == 1:
            return Decision(
                Action.VERIFY_DUPLICATE,
                "first attempt answered DUPLICATE_BATCH_NO: the number may have been ours"
                " (a restored database, a replayed request); a query of it must tell",
                code,
                operator_flag="duplicate_batch_no_unverified",
            )
        return Decision(
            Action.WAIT_NOTIFY,
            "DUPLICATE_BATCH_NO after definite refusals: cannot tell whether it was accepted",
            code,
            operator_flag="duplicate_batch_no_ambiguous",
        )
    if kind is CodeKind.RETRY_LATER:
        return Decision(Action.RETRY_SAME, "gateway busy with another batch", code)
    if kind is CodeKind.CONFIGURATION:
        return Decision(Action.HALT, "merchant configuration refused", code, "configuration_error")
    if maybe_sent_before:
        return Decision(
            Action.WAIT_NOTIFY,
            "refused after an earlier unknown outcome: the first attempt may have been accepted",
            code,
            operator_flag="refused_after_unknown_outcome",
        )
    if kind is None:
        return Decision(
            Action.HOLD,
            "gateway answered a code this worker does not know",
            code,
            operator_flag="unknown_code",
        )
    if item_count > 1:
        return Decision(Action.SPLIT, "refused: split the batch to isolate the cause", code)
    if kind is CodeKind.ITEM or refund_batches >= MAX_BATCHES_PER_REFUND:
        return Decision(Action.FAIL_ITEM, "gateway refused this refund", code)
    return Decision(Action.REBATCH, "single refund refused at batch level: try a new batch", code)


def retry_delay(attempts: int) -> float:
    """Seconds to wait before attempt number `attempts + 1`."""
    exponent = max(attempts - 1, 0)
    if exponent >= 16:
        return RETRY_CAP_SECONDS
    return float(min(RETRY_CAP_SECONDS, RETRY_BASE_SECONDS * (2**exponent)))
