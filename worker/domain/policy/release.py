"""Releasing a batch the gateway may have taken: the reconciliation rule, pure.

A maybe-sent batch's refunds may go out under a new batch_no only when the gateway
has proved it never took the batch: its Beijing day is over (its batch_no can never
be accepted any more) and at least two queries by batch_no in a row, the last one
long enough after the last attempt, answered REFUND_NOT_EXIST. Anything else keeps it
waiting. `next_query_delay` is the reconciler's growing schedule.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from worker.mapi import BEIJING

# A maybe-sent batch is released only this long after its last attempt, by default.
RELEASE_AFTER_SECONDS = 86400.0
# How many consecutive REFUND_NOT_EXIST answers a release needs.
RELEASE_NOT_EXIST_ANSWERS = 2
# The reconciler's queries after the first one: 10 min, 1 h, 6 h, 24 h, then daily.
QUERY_DELAYS_SECONDS = (600.0, 3600.0, 21600.0, 86400.0)
QUERY_REPEAT_SECONDS = 86400.0


class QueryAnswer(enum.StrEnum):
    """What one query by batch_no answered."""

    FOUND = "found"  # the answer lists items under the batch_no
    NOT_FOUND = "not_found"  # a complete REFUND_NOT_EXIST answer
    REFUSED = "refused"  # the query itself was refused (an error code)
    NO_ANSWER = "no_answer"  # timeout, network, a partial or unparseable answer


@dataclass(frozen=True, slots=True)
class ReleaseDecision:
    release: bool
    reason: str


def decide_release(
    *,
    batch_day: date,
    last_attempt_at: datetime,
    answers: Sequence[tuple[datetime, str]],
    now: datetime,
    today: date | None = None,
    release_after_seconds: float = RELEASE_AFTER_SECONDS,
) -> ReleaseDecision:
    """May the refunds of a batch the gateway may have taken go out under a new batch_no?

    `answers` are (asked_at, kind) of the queries by this batch_no, in any order, with
    kind one of `QueryAnswer`'s values; pass every answer there is (older ones are
    sorted out here). `today`, when given, must be `now`'s Beijing date.

    Released only when all of these hold, else the batch keeps waiting:

    * no answer ever found items under the batch_no (a found answer is final: never);
    * the batch's Beijing day is over, so the gateway can no longer accept its number;
    * the last `RELEASE_NOT_EXIST_ANSWERS` answers after the last attempt are all
      REFUND_NOT_EXIST (an error, no answer or a partial answer in between restarts the
      count);
    * the last of them was asked after the batch's Beijing day ended and at least
      `release_after_seconds` after the last attempt.

    An answer kind this function does not know counts as not REFUND_NOT_EXIST.
    """
    for moment in (now, last_attempt_at, *(at for at, _ in answers)):
        if moment.tzinfo is None:
            raise ValueError("decide_release needs timezone-aware datetimes")
    current_day = now.astimezone(BEIJING).date()
    if today is not None and today != current_day:
        raise ValueError(f"today {today} is not the Beijing date of now ({current_day})")
    if release_after_seconds < 0:
        raise ValueError("release_after_seconds cannot be negative")

    if any(kind == QueryAnswer.FOUND for _, kind in answers):
        return ReleaseDecision(False, "a query found items under this batch_no")
    if current_day <= batch_day:
        return ReleaseDecision(False, "the batch's Beijing day is not over")
    # Answers asked at the same moment are put in the order least favourable to a
    # release: a REFUND_NOT_EXIST never hides an error or no-answer of the same instant.
    since = sorted(
        ((at, kind) for at, kind in answers if last_attempt_at < at <= now),
        key=lambda answer: (answer[0], answer[1] != QueryAnswer.NOT_FOUND),
    )
    latest = since[-RELEASE_NOT_EXIST_ANSWERS:]
    if len(latest) < RELEASE_NOT_EXIST_ANSWERS or any(
        kind != QueryAnswer.NOT_FOUND for _, kind in latest
    ):
        return ReleaseDecision(
            False,
            f"fewer than {RELEASE_NOT_EXIST_ANSWERS} REFUND_NOT_EXIST answers in a row"
            " since the last attempt",
        )
    last_at = latest[-1][0]
    if last_at.astimezone(BEIJING).date() <= batch_day:
        return ReleaseDecision(False, "the last REFUND_NOT_EXIST was asked on the batch's day")
    if last_at - last_attempt_at < timedelta(seconds=release_after_seconds):
        return ReleaseDecision(
            False,
            f"the last REFUND_NOT_EXIST came less than {release_after_seconds:g} s"
            " after the last attempt",
        )
    return ReleaseDecision(
        True,
        f"{RELEASE_NOT_EXIST_ANSWERS} REFUND_NOT_EXIST answers after the batch's day,"
        f" the last {release_after_seconds:g} s or more after the last attempt",
    )


def next_query_delay(queries_made: int) -> float:
    """Seconds from the query just made (number `queries_made`, from 1) to the next one.

    The first query comes `RECONCILE_AFTER_SECONDS` after the last attempt (the
    reconciler's setting); then 10 minutes, 1 hour, 6 hours and 24 hours after each
    query in turn (`QUERY_DELAYS_SECONDS`), then every 24 hours (`QUERY_REPEAT_SECONDS`).
    """
    if queries_made < 1:
        raise ValueError("next_query_delay counts the queries made, from 1")
    if queries_made <= len(QUERY_DELAYS_SECONDS):
        return QUERY_DELAYS_SECONDS[queries_made - 1]
    return QUERY_REPEAT_SECONDS
