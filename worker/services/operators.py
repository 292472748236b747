"""Decisions only a person can take, with their guards, each stored and logged.

`resolve_batch` is the only way a person moves a batch whose outcome the worker
cannot prove:

* `accepted`: the operator knows the gateway holds the batch (e.g. it is in the
  merchant console). The batch becomes `accepted`, its refunds `submitted`, and
  their results still come only from the gateway (notification or query).
* `not_accepted`: the operator says the gateway never took it, so its refunds may
  go out again under a new batch_no. Refused unless the batch's Beijing day is
  over (its batch_no can never be accepted any more) and a query made by this
  very command answers `REFUND_NOT_EXIST`. `force` skips both checks: it is logged
  at critical level and counted, and stored as forced.

Every decision is stored in `operator_decisions` (who, when, why, what the query
said, how many refunds it moved) and shown by `refund-worker status batch`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import structlog
from prometheus_client import Counter

from worker.adapters.postgres import ledger
from worker.adapters.postgres.pool import Database
from worker.domain.states import BatchState
from worker.mapi import BEIJING
from worker.services.ports import QueryResult, RefundQueries

log = structlog.get_logger("worker.operator")

Clock = Callable[[], datetime]

DECISIONS = Counter(
    "refund_operator_decisions_total", "Operator decisions on batches", ["decision", "forced"]
)

RESOLVABLE = (
    BatchState.RETRY,
    BatchState.UNKNOWN,
    BatchState.ACCEPTED,
    BatchState.HELD,
    BatchState.APPROVED,
)


class ResolveRefused(Exception):
    """The decision's guard did not hold; nothing was changed."""


@dataclass(frozen=True, slots=True)
class Resolution:
    batch_no: str
    decision: str
    state_before: str
    state_after: str
    refunds: int
    query: QueryResult | None
    forced: bool


def resolve_batch(
    db: Database,
    gateways: RefundQueries,
    batch_no: str,
    *,
    decision: str,
    operator: str,
    reason: str,
    force: bool,
    clock: Clock,
) -> Resolution:
    """Carry out an operator's decision on a batch, or raise ResolveRefused saying why."""
    if decision not in ("accepted", "not_accepted"):
        raise ResolveRefused(f"decision must be accepted or not_accepted, not {decision!r}")
    operator, reason = operator.strip(), reason.strip()
    if not operator or not reason:
        raise ResolveRefused("an operator name and a reason are required")
    with db.transaction() as conn:
        batch = ledger.lock_batch_view(conn, batch_no)
    if batch is None:
        raise ResolveRefused(f"no batch {batch_no}")
    if batch.state not in RESOLVABLE:
        raise ResolveRefused(
            f"batch {batch_no} is {batch.state}: only batches in {', '.join(RESOLVABLE)}"
            " can be resolved"
        )

    query: QueryResult | None = None
    if decision == "not_accepted":
        day_over = clock().astimezone(BEIJING).date() > batch.batch_day
        gateway = gateways(batch.partner)
        if gateway is None:
            raise ResolveRefused(
                f"batch {batch_no} belongs to merchant {batch.partner}, which this deployment"
                " does not serve: its query cannot be asked"
            )
        query = gateway.query_refunds(batch_no=batch_no)
        with db.transaction() as conn:
            ledger.record_query(
                conn,
                batch_no=batch_no,
                trade_no=None,
                purpose="operator",
                answer=query.answer,
                error_code=query.error_code,
                items=[{"trade_no": i.trade_no, "code": i.code} for i in query.items],
                detail=query.detail[:500] or None,
                asked_at=clock(),
            )
        problems = []
        if not day_over:
            problems.append(f"its Beijing day {batch.batch_day} is not over")
        if query.answer != "not_found":
            problems.append(f"the gateway's answer was {query.answer} ({query.detail[:80]})")
        if problems and not force:
            raise ResolveRefused(
                f"batch {batch_no} cannot be resolved as not accepted: " + "; ".join(problems)
            )
        if problems:
            log.critical(
                "operator.forced",
                batch_no=batch_no,
                operator=operator,
                problems=problems,
            )

    with db.transaction() as conn:
        current = ledger.lock_batch_view(conn, batch_no)
        if current is None or current.state != batch.state:
            raise ResolveRefused(f"batch {batch_no} changed while deciding; look again")
        if decision == "accepted":
            moved = ledger.mark_accepted(conn, batch_no)
            state_after = "accepted"
        else:
            moved = len(ledger.return_to_pending(conn, batch_no, include_submitted=True))
            ledger.update_batch(
                conn,
                batch_no,
                state=BatchState.RELEASED,
                next_attempt_at=None,
                next_query_at=None,
                last_error=f"released by {operator}: {reason}"[:500],
            )
            state_after = "released"
        ledger.record_decision(
            conn,
            batch_no=batch_no,
            decision=decision,
            operator=operator,
            reason=reason,
            forced=force,
            query_answer=None if query is None else query.answer,
            query_detail=None if query is None else query.detail[:500],
            refunds=moved,
        )
    DECISIONS.labels(decision, str(force).lower()).inc()
    log.warning(
        "operator.resolved",
        batch_no=batch_no,
        decision=decision,
        operator=operator,
        forced=force,
        refunds=moved,
        state_before=batch.state,
    )
    return Resolution(batch_no, decision, batch.state, state_after, moved, query, force)
