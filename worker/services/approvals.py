"""The password channel: batches an operator approves in a browser.

On the password service (`refund_fastpay_by_platform_pwd`, merchant `service = "pwd"`)
the packer cuts batches exactly as for the password-free one, but a batch then waits
`awaiting_approval` instead of being sent. An operator, signed in to the console:

* **approves** it: in one transaction the batch is checked to be still awaiting approval
  (the database decides, so two operators never approve one batch twice), the request
  is signed at this moment (`seller_user_id` or `seller_email` included), and the batch
  becomes `approved` with the attempt counted and `maybe_sent` set: the form goes to
  the operator's browser, which may post it, so from here on the batch_no is never
  renumbered. Its outcome comes back as the usual `batch_refund_notify`; reconciliation
  (`refund_fastpay_query`) asks about it like any batch the gateway may hold, but never
  releases it on its own: an approved batch the gateway shows nothing for after its
  Beijing day is flagged `approved_not_notified` and waits for an operator's decision
  (`resolve`);
* or **rejects** it: its refunds end `rejected` with code `OPERATOR_REJECTED`, their
  `refund.completed` events go out, the batch ends `rejected`.

The form is rendered once per approval: asking again says who approved it and when
(opening it twice would send the same batch_no twice, which the gateway refuses as
`DUPLICATE_BATCH_NO`, harmless but confusing).

A batch still awaiting approval when its Beijing day ends was never sent (nothing was
rendered): `expire_unapproved` abandons it and its refunds go back to pending, to be
packed again under a batch_no of the new day.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal

import structlog

from worker.adapters.postgres import approvals as store
from worker.adapters.postgres import ledger
from worker.adapters.postgres.pool import Connection, Database
from worker.domain.errors import ConfigError, DetailDataError, ProtocolError, SigningError
from worker.domain.merchants import MerchantProfile, Merchants
from worker.domain.rules import MAX_REFUNDS_PER_TRADE
from worker.domain.states import OPERATOR_REJECTED, BatchState, RefundState
from worker.mapi import (
    BEIJING,
    SERVICE_PWD,
    RefundItem,
    build_refund_request,
    render_gateway_form,
)
from worker.services.outcomes import record_completions
from worker.services.packing import DEFAULT_REASON

log = structlog.get_logger("worker.approvals")

Clock = Callable[[], datetime]

# A trade with at least this many refunds counted is shown with a warning.
NEAR_REFUND_LIMIT = MAX_REFUNDS_PER_TRADE - 9


class ApprovalRefused(Exception):
    """The approval or rejection's guard did not hold; nothing was changed."""


@dataclass(frozen=True, slots=True)
class QueueEntry:
    """A batch in the approval queue, as the console lists it."""

    batch_no: str
    merchant: str  # partner id
    merchant_id: str  # the merchant's alias in this deployment
    state: str  # awaiting_approval | approved
    deadline: datetime  # the end of its Beijing day: approve before this
    seller: str  # the Alipay account that must sign in on the gateway's page
    items: int
    total: Decimal
    created_at: datetime
    age_seconds: float
    approved_by: str | None
    approved_at: datetime | None
    flag: str | None


@dataclass(frozen=True, slots=True)
class SheetItem:
    refund_id: str
    trade_no: str
    order_id: str | None
    amount: Decimal
    reason_sent: str
    made_safe: bool  # the reason sent differs from the one requested
    trade_count: int  # refunds of the trade counted toward the 99 (this one included)
    trade_total: Decimal  # amount refunded or in flight on the trade (this one included)
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Sheet:
    entry: QueueEntry
    items: list[SheetItem]
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class SignedForm:
    """What the operator's browser posts to the gateway (never logged, never stored):
    the signed parameters and the auto-submitting page that carries them."""

    batch_no: str
    gateway_url: str
    charset: str
    params: dict[str, str] = field(repr=False)
    page: bytes = field(repr=False, default=b"")


def deadline_of(batch_day: date) -> datetime:
    """Midnight at the end of the batch's Beijing day."""
    return datetime.combine(batch_day + timedelta(days=1), time(0), tzinfo=BEIJING)


def seller_account(merchant: MerchantProfile | None, partner: str) -> str:
    if merchant is None:
        return partner
    user_id, email = merchant.seller()
    return user_id or email or partner


def approval_queue(db: Database, merchants: Merchants) -> list[QueueEntry]:
    """Every batch awaiting approval or approved and not settled yet, oldest first."""
    with db.transaction() as conn:
        rows = store.approval_queue(conn)
    return [_entry(row, merchants) for row in rows]


def approval_sheet(db: Database, merchants: Merchants, batch_no: str) -> Sheet | None:
    """One batch of the queue with its items as they will be sent, and warnings."""
    with db.transaction() as conn:
        rows = store.approval_queue(conn, batch_no)
        if not rows:
            return None
        items = store.sheet_rows(conn, batch_no)
        tallies = ledger.trade_tallies(conn, [i.trade_no for i in items])
    entry = _entry(rows[0], merchants)
    sheet_items = []
    warnings: list[str] = []
    for item in items:
        tally = tallies[item.trade_no]
        notes: list[str] = []
        if tally.count >= NEAR_REFUND_LIMIT:
            notes.append(f"trade has {tally.count} of its {MAX_REFUNDS_PER_TRADE} refunds")
        sheet_items.append(
            SheetItem(
                refund_id=item.refund_id,
                trade_no=item.trade_no,
                order_id=item.order_id,
                amount=item.amount,
                reason_sent=item.reason_sent,
                made_safe=item.reason_sent != (item.reason or DEFAULT_REASON),
                trade_count=tally.count,
                trade_total=tally.total,
                warnings=tuple(notes),
            )
        )
        warnings += [f"{item.trade_no}: {n}" for n in notes]
    return Sheet(entry, sheet_items, warnings)


def approve_batch(
    db: Database,
    merchants: Merchants,
    batch_no: str,
    *,
    operator: str,
    gateway_url: str,
    clock: Clock,
    script_src: str | None = None,
) -> SignedForm:
    """Approve `batch_no`: sign its request now, write its auto-submitting page
    (`script_src`: the script that submits it) and mark it approved, all in one
    transaction, so a page that cannot be written leaves the batch awaiting approval.
    Raises ApprovalRefused saying why when it may not be approved."""
    operator = operator.strip()
    if not operator:
        raise ApprovalRefused("an operator name is required")
    now = clock()
    expired: ApprovalRefused | None = None
    with db.transaction() as conn:
        batch = ledger.lock_batch(conn, batch_no)
        if batch is None:
            raise ApprovalRefused(f"no batch {batch_no}")
        if batch.state == BatchState.APPROVED:
            row = store.approval_queue(conn, batch_no)
            who = row[0].approved_by if row else "someone"
            when = row[0].approved_at if row else None
            raise ApprovalRefused(
                f"batch {batch_no} was approved already by {who}"
                f"{f' at {when.astimezone(BEIJING):%H:%M:%S} (Beijing)' if when else ''}: its"
                " form was rendered then and is not rendered again (posting it twice sends the"
                " same batch_no twice, which the gateway refuses as DUPLICATE_BATCH_NO)"
            )
        if batch.state != BatchState.AWAITING_APPROVAL:
            raise ApprovalRefused(f"batch {batch_no} is {batch.state}, not awaiting approval")
        merchant = merchants.get(batch.partner)
        if merchant is None:
            raise ApprovalRefused(
                f"batch {batch_no} belongs to merchant {batch.partner}, which this deployment"
                " does not serve: nothing here can sign it"
            )
        if batch.batch_day != now.astimezone(BEIJING).date():
            moved = _expire(conn, batch_no, "its Beijing day ended before it was approved")
            expired = ApprovalRefused(
                f"batch {batch_no} was for {batch.batch_day} and can no longer be sent: its"
                f" {moved} refunds go into a new batch to approve"
            )
        else:
            params, count = _sign_and_mark(conn, batch, merchant, operator=operator, now=now)
            try:
                page = render_gateway_form(
                    gateway_url,
                    params,
                    charset=merchant.charset,
                    script_src=script_src,
                    title=f"Batch {batch_no}: to Alipay",
                    note=f"Batch {batch_no} goes to Alipay's payment-password page.",
                )
            except (ProtocolError, ConfigError) as exc:
                raise ApprovalRefused(
                    f"the form of batch {batch_no} cannot be written: {exc}"
                ) from None
    if expired is not None:
        raise expired  # after the expiry committed
    log.warning(
        "approval.approved",
        batch_no=batch_no,
        merchant=batch.partner,
        operator=operator,
        items=count,
    )
    return SignedForm(batch_no, gateway_url, merchant.charset, params, page)


def _sign_and_mark(
    conn: Connection,
    batch: ledger.Batch,
    merchant: MerchantProfile,
    *,
    operator: str,
    now: datetime,
) -> tuple[dict[str, str], int]:
    """Sign the password-service request of a batch awaiting approval and record the
    approval (state, attempt, who, when) in the caller's transaction."""
    batch_no = batch.batch_no
    if not merchant.gateway.notify_url:  # checked when settings load; kept as a guard
        raise ApprovalRefused(
            f"merchant {merchant.id} has no notify_url: the password service reports only"
            " through it"
        )
    seller_user_id, seller_email = merchant.seller()
    items = ledger.batch_items(conn, batch_no)
    try:
        params = build_refund_request(
            merchant.gateway,
            batch_no=batch_no,
            items=[RefundItem(i.trade_no, i.amount, i.reason_sent) for i in items],
            now=now,
            service=SERVICE_PWD,
            seller_user_id=seller_user_id,
            seller_email=seller_email,
        )
    except (ProtocolError, ConfigError, SigningError, DetailDataError) as exc:
        raise ApprovalRefused(f"batch {batch_no} cannot be signed: {exc}") from None
    ledger.update_batch(
        conn,
        batch_no,
        state=BatchState.APPROVED,
        attempts=batch.attempts + 1,
        maybe_sent=True,
        next_attempt_at=None,
        next_query_at=None,
        approved_by=operator,
        approved_at=now,
    )
    ledger.note_attempt(conn, batch_no)
    ledger.record_decision(
        conn,
        batch_no=batch_no,
        decision="approved",
        operator=operator,
        reason="approved for the gateway's password page",
        forced=False,
        query_answer=None,
        query_detail=None,
        refunds=len(items),
    )
    return params, len(items)


def reject_batch(db: Database, batch_no: str, *, operator: str, reason: str, clock: Clock) -> int:
    """Reject a batch awaiting approval: its refunds end rejected (OPERATOR_REJECTED) with
    their events. Returns how many refunds ended. Raises ApprovalRefused."""
    operator, reason = operator.strip(), reason.strip()
    if not operator or not reason:
        raise ApprovalRefused("an operator name and a reason are required")
    with db.transaction() as conn:
        batch = ledger.lock_batch(conn, batch_no)
        if batch is None:
            raise ApprovalRefused(f"no batch {batch_no}")
        if batch.state != BatchState.AWAITING_APPROVAL:
            raise ApprovalRefused(
                f"batch {batch_no} is {batch.state}: only a batch awaiting approval can be"
                " rejected (an approved one may have been sent)"
            )
        ids = [i.refund_id for i in ledger.batch_items(conn, batch_no)]
        completed = ledger.finish_refunds(
            conn,
            batch_no,
            [(refund_id, RefundState.REJECTED, OPERATOR_REJECTED) for refund_id in ids],
            source="operator",
        )
        record_completions(conn, completed)
        ledger.update_batch(
            conn,
            batch_no,
            state=BatchState.REJECTED,
            next_attempt_at=None,
            completed_at=clock(),
            last_error=f"rejected by {operator}: {reason}"[:500],
        )
        ledger.record_decision(
            conn,
            batch_no=batch_no,
            decision="rejected",
            operator=operator,
            reason=reason[:500],
            forced=False,
            query_answer=None,
            query_detail=None,
            refunds=len(completed),
        )
    log.warning(
        "approval.rejected",
        batch_no=batch_no,
        merchant=batch.partner,
        operator=operator,
        refunds=len(completed),
    )
    return len(completed)


def expire_unapproved(db: Database, *, clock: Clock) -> list[str]:
    """Abandon the batches whose Beijing day ended while they awaited approval (never
    sent: nothing was rendered); their refunds go back to pending. Returns their numbers."""
    today = clock().astimezone(BEIJING).date()
    with db.transaction() as conn:
        expired = store.lock_expired_unapproved(conn, today)
        for batch_no in expired:
            _expire(conn, batch_no, "its Beijing day ended before it was approved")
    return expired


def waiting_report(db: Database) -> list[tuple[str, str, int, float]]:
    """(partner, state, batches, oldest age in seconds) of the approval queue, logged."""
    with db.transaction() as conn:
        rows = store.queue_gauges(conn)
    for partner, state, count, age in rows:
        log.info(
            "approval.waiting", merchant=partner, state=state, batches=count, oldest_seconds=age
        )
    return rows


def _expire(conn: Connection, batch_no: str, why: str) -> int:
    moved = ledger.return_to_pending(conn, batch_no)
    ledger.update_batch(
        conn, batch_no, state=BatchState.ABANDONED, next_attempt_at=None, last_error=why
    )
    log.warning("approval.expired", batch_no=batch_no, refunds=len(moved), reason=why)
    return len(moved)


def _entry(row: store.QueuedBatch, merchants: Merchants) -> QueueEntry:
    merchant = merchants.get(row.partner)
    return QueueEntry(
        batch_no=row.batch_no,
        merchant=row.partner,
        merchant_id=merchant.id if merchant else row.partner,
        state=row.state,
        deadline=deadline_of(row.batch_day),
        seller=seller_account(merchant, row.partner),
        items=row.item_count,
        total=row.total,
        created_at=row.created_at,
        age_seconds=row.age_seconds,
        approved_by=row.approved_by,
        approved_at=row.approved_at,
        flag=row.operator_flag,
    )
