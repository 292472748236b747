"""The money-safety rules of submission, as pure functions.

Given what happened to one attempt at submitting a batch, decide what to do
next; the submission service only carries decisions out.

The central fact is `maybe_sent`: once the gateway MAY have received a batch,
its items must never go out under another batch_no. Such a batch is only ever
retried under the same batch_no (on the same Beijing day) or waited on until
its notification arrives. Every `Decision` carries `maybe_sent`, computed here
and nowhere else, and a decision that releases items (split, re-batch, fail)
cannot be built with `maybe_sent` set.

Only a proof that the gateway refused the batch leaves it not maybe-sent:

* a connection that was never opened (`Outcome.NOT_SENT`);
* an `F` answer whose code says the batch was refused and nothing recorded:
  kinds BATCH_FIXABLE, CONFIGURATION and ITEM, and BATCH_REFUND_LOCK_ERROR.

DUPLICATE_BATCH_NO means the gateway already holds the batch_no. After an
attempt that may have reached the gateway it was ours: accepted. On a first
attempt it may still have been ours (a database restored from before the
submission, or an egress proxy that replayed the POST), so the batch is kept
as maybe-sent, flagged `duplicate_batch_no_unverified`, and resolved by a
query of that batch_no (`worker/services/reconciler.py`): the gateway listing
these trades under it means accepted; a complete answer listing only other
trades means the number was someone else's and the items may be re-batched; an
answer listing nothing proves nothing (a batch in progress lists nothing yet),
so the batch then waits for the release rule below.

Everything else is not a proof: `T`/`P`, SYSTEM_ERROR (the code table says the
batch may or may not be recorded; retried under the same batch_no), an `F`
without a code or with a code this worker does not know, DUPLICATE_BATCH_NO,
an unparseable answer, a timeout, a reset, a non-200 status, a crash while the
request was in flight.

A refusal for the batch's date (REFUND_DATE_ERROR, BATCH_NO_FORMAT_ERROR: clock
skew against the gateway near Beijing midnight) is a proof, but says nothing
about the refunds: the whole batch is renumbered after
`DATE_REBATCH_DELAY_SECONDS`, never split, never counted toward failing them.

A maybe-sent batch is released into a new batch only under `decide_release`
(reconciliation by query): its day is over, two REFUND_NOT_EXIST answers in a
row, the last one a day after the last attempt; a query that found items
means never.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date

from worker.domain.backoff import backoff_delay
from worker.mapi import CodeKind, SyncResponse, SyncStatus, classify

# How many batches one refund may go through after definite batch-level refusals
# before it is reported as failed with the gateway's code.
MAX_BATCHES_PER_REFUND = 3

# Batch-level codes about the batch's date (refund_date, the day in batch_no): clock skew
# against the gateway near Beijing midnight. They say nothing about the refunds.
DATE_CODES = frozenset({"REFUND_DATE_ERROR", "BATCH_NO_FORMAT_ERROR"})
# How long a batch refused for its date waits before it is renumbered, so that a clock a
# little behind the gateway's has passed midnight too.
DATE_REBATCH_DELAY_SECONDS = 60.0

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
    # refused for its date (DATE_CODES): keep the items for DATE_REBATCH_DELAY_SECONDS, then
    # renumber the whole batch; never split, never counted toward failing its refunds
    REDATE = "redate"


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


# Actions that hand the batch's refunds back (new batches, or failed): only after a proof.
RELEASING = frozenset({Action.SPLIT, Action.FAIL_ITEM, Action.REBATCH, Action.REDATE})
# Actions that leave the batch with the gateway, as far as the worker can tell.
WAITING = frozenset({Action.ACCEPTED, Action.WAIT_NOTIFY, Action.VERIFY_DUPLICATE})

# RETRY_LATER codes whose F answer proves nothing was recorded. Any other RETRY_LATER
# code (SYSTEM_ERROR, or one added to the table later) is retried as maybe-sent.
_REFUSED_RETRY_CODES = frozenset({"BATCH_REFUND_LOCK_ERROR"})
# Kinds whose F answer proves the batch was refused as a whole and nothing recorded.
_REFUSED_KINDS = frozenset({CodeKind.BATCH_FIXABLE, CodeKind.CONFIGURATION, CodeKind.ITEM})


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """What to do with a batch, and whether the gateway may now hold it.

    `maybe_sent` is what the batch row must record: True once any attempt of this
    batch_no may have reached the gateway. An action that releases the items
    (`RELEASING`) requires it False; one that waits for the gateway (`WAITING`)
    requires it True.

    `counts_toward_refund_limit` is False when this batch must not count toward
    `MAX_BATCHES_PER_REFUND` for its refunds (a refusal for the batch's date).
    """

    action: Action
    reason: str
    maybe_sent: bool
    code: str | None = None
    operator_flag: str | None = None
    counts_toward_refund_limit: bool = True

    def __post_init__(self) -> None:
        if self.maybe_sent and self.action in RELEASING:
            raise ValueError(
                f"{self.action.value} releases the items: the batch cannot be maybe-sent"
            )
        if not self.maybe_sent and self.action in WAITING:
            raise ValueError(f"{self.action.value} waits for the gateway: the batch is maybe-sent")


def proves_refusal(attempt: Attempt) -> bool:
    """True when this attempt proves the gateway did not record the batch (module docstring)."""
    if attempt.outcome is Outcome.NOT_SENT:
        return True
    response = attempt.response
    if attempt.outcome is not Outcome.ANSWERED or response is None:
        return False
    if response.status is not SyncStatus.REFUSED or not response.error:
        return False
    code = response.error.strip().upper()
    return classify(code) in _REFUSED_KINDS or code in _REFUSED_RETRY_CODES


def decide_before_send(
    *, batch_day: date, today: date, maybe_sent: bool, last_code: str | None = None
) -> Decision | None:
    """The Beijing-day rule; None means: go ahead and send.

    A batch_no carries its day and is only valid on that day. A batch that may have
    been accepted is never renumbered: it waits for its notification (Alipay resends
    for about 25 hours) and the sweeper flags it for an operator if none comes. A
    batch that certainly never reached the gateway is safe to renumber; one whose
    last answer refused it for its date (`last_code` in DATE_CODES) is renumbered
    when it comes due again, whatever the day.
    """
    refused_for_date = last_code is not None and last_code.strip().upper() in DATE_CODES
    if not maybe_sent and refused_for_date:
        return Decision(
            action=Action.REBATCH,
            reason="refused for its date: renumber under the current day",
            maybe_sent=False,
        )
    if batch_day == today:
        return None
    if maybe_sent:
        return Decision(
            action=Action.WAIT_NOTIFY,
            reason="batch day is over and an earlier attempt's outcome is unknown",
            maybe_sent=True,
        )
    return Decision(
        action=Action.REBATCH,
        reason="batch day is over and the gateway never took the batch",
        maybe_sent=False,
    )


def decide_unsendable(error: str, *, maybe_sent_before: bool) -> Decision:
    """The client refused to send the request (e.g. text the charset cannot encode)."""
    return Decision(
        action=Action.HOLD,
        reason=f"request cannot be sent: {error}",
        maybe_sent=maybe_sent_before,
        operator_flag="request_invalid",
    )


def decide(
    attempt: Attempt,
    *,
    maybe_sent_before: bool,
    attempts: int,
    item_count: int,
    refund_batches: int,
) -> Decision:
    """What to do after an attempt.

    `maybe_sent_before`: some earlier attempt of this batch_no may have reached the gateway.
    `attempts`: attempts so far, this one included.
    `refund_batches`: for a single-item batch, how many batches its refund has been in.
    """
    maybe_sent = maybe_sent_before or not proves_refusal(attempt)
    action, reason, code, flag = _choose(
        attempt,
        maybe_sent_before=maybe_sent_before,
        attempts=attempts,
        item_count=item_count,
        refund_batches=refund_batches,
    )
    return Decision(
        action=action,
        reason=reason,
        maybe_sent=maybe_sent,
        code=code,
        operator_flag=flag,
        counts_toward_refund_limit=action is not Action.REDATE,
    )


_Choice = tuple[Action, str, str | None, str | None]


def _choose(
    attempt: Attempt,
    *,
    maybe_sent_before: bool,
    attempts: int,
    item_count: int,
    refund_batches: int,
) -> _Choice:
    if attempt.outcome is Outcome.NOT_SENT:
        return Action.RETRY_SAME, f"not sent: {attempt.error}", None, None
    if attempt.outcome is Outcome.UNKNOWN or attempt.response is None:
        return Action.RETRY_SAME, f"outcome unknown: {attempt.error}", None, None

    response = attempt.response
    if response.status in (SyncStatus.ACCEPTED, SyncStatus.PROCESSING):
        return Action.ACCEPTED, f"gateway answered {response.status.name}", None, None
    if response.status is SyncStatus.UNKNOWN:
        return Action.RETRY_SAME, f"unparseable answer: {response.detail}", None, None

    code = response.error or "UNKNOWN_ERROR"
    kind = classify(code)

    if kind is CodeKind.DUPLICATE_BATCH:
        if maybe_sent_before:
            return Action.ACCEPTED, "DUPLICATE_BATCH_NO after an unknown outcome", code, None
        if attempts == 1:
            return (
                Action.VERIFY_DUPLICATE,
                "first attempt answered DUPLICATE_BATCH_NO: the number may have been ours"
                " (a restored database, a replayed request); a query of it must tell",
                code,
                "duplicate_batch_no_unverified",
            )
        return (
            Action.WAIT_NOTIFY,
            "DUPLICATE_BATCH_NO after definite refusals: cannot tell whether it was accepted",
            code,
            "duplicate_batch_no_ambiguous",
        )
    if kind is CodeKind.RETRY_LATER:
        if code.strip().upper() in _REFUSED_RETRY_CODES:
            return Action.RETRY_SAME, "gateway busy with another batch", code, None
        return (
            Action.RETRY_SAME,
            "gateway error: the batch may or may not be recorded, retry the same batch_no",
            code,
            None,
        )
    if kind is CodeKind.CONFIGURATION:
        return Action.HALT, "merchant configuration refused", code, "configuration_error"
    if maybe_sent_before:
        return (
            Action.WAIT_NOTIFY,
            "refused after an earlier unknown outcome: the first attempt may have been accepted",
            code,
            "refused_after_unknown_outcome",
        )
    if code.strip().upper() in DATE_CODES:
        return (
            Action.REDATE,
            f"refused for its date (clock skew near midnight?): renumber the whole batch"
            f" in {DATE_REBATCH_DELAY_SECONDS:g} s",
            code,
            None,
        )
    if kind is None:
        return (
            Action.HOLD,
            "gateway answered a code this worker does not know",
            code,
            "unknown_code",
        )
    if item_count > 1:
        return Action.SPLIT, "refused: split the batch to isolate the cause", code, None
    if kind is CodeKind.ITEM or refund_batches >= MAX_BATCHES_PER_REFUND:
        return Action.FAIL_ITEM, "gateway refused this refund", code, None
    return Action.REBATCH, "single refund refused at batch level: try a new batch", code, None


def retry_delay(attempts: int) -> float:
    """Seconds to wait before attempt number `attempts + 1`."""
    return backoff_delay(max(attempts - 1, 0), base=RETRY_BASE_SECONDS, cap=RETRY_CAP_SECONDS)
