"""Intake: store a micro-batch of `refund.requested` messages idempotently.

One transaction per micro-batch. Returns the deliveries to dead-letter; the
consumer acks the whole micro-batch only after this returns (so after commit).

Each request belongs to the merchant it names (`merchant`: partner id or alias; absent:
the default merchant, `worker/domain/merchants.py`); one the deployment does not serve
is dead-lettered with reason `unknown_merchant`. A repeat of a refund_id is a no-op only
when its content and its merchant both equal the request that stands.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import structlog

from worker.adapters.postgres import ledger
from worker.adapters.postgres.pool import Database
from worker.contracts.events import RefundRequest, parse_refund_requested
from worker.domain.errors import EventValidationError
from worker.domain.merchants import Merchants
from worker.domain.rules import TradeTally, check_refund
from worker.domain.states import RefundState
from worker.observability.metrics import INTAKE_MESSAGES
from worker.openapi import out_request_no
from worker.services.outcomes import record_completions
from worker.services.ports import DeadLetter, Delivery

log = structlog.get_logger("worker.intake")

CONFLICTING_DUPLICATE = "conflicting_duplicate"
UNKNOWN_MERCHANT = "unknown_merchant"
CHANNEL_NOT_CONFIGURED = "channel_not_configured"


@dataclass(slots=True)
class _Candidate:
    delivery: Delivery
    request: RefundRequest
    content_hash: str
    partner: str

    @property
    def identity(self) -> tuple[str, str]:
        """What a repeat must equal to be a no-op: the content and the merchant."""
        return self.content_hash, self.partner


def _conflict(c: _Candidate) -> DeadLetter:
    log.warning(
        "refund.conflicting_duplicate",
        refund_id=c.request.refund_id,
        trade_no=c.request.trade_no,
        message_id=c.delivery.message_id,
    )
    return DeadLetter(
        c.delivery,
        CONFLICTING_DUPLICATE,
        f"refund_id {c.request.refund_id!r} was stored before with different content;"
        " the first request stands",
    )


def _duplicate(c: _Candidate) -> None:
    INTAKE_MESSAGES.labels("duplicate").inc()
    log.info("refund.duplicate", refund_id=c.request.refund_id, message_id=c.delivery.message_id)


def _unknown_merchant(delivery: Delivery, request: RefundRequest) -> DeadLetter:
    name = (request.merchant or "")[:64]
    log.warning(
        "refund.invalid",
        reason=UNKNOWN_MERCHANT,
        refund_id=request.refund_id,
        merchant=name,
        message_id=delivery.message_id,
    )
    return DeadLetter(
        delivery,
        UNKNOWN_MERCHANT,
        f"merchant: {name!r} is neither the partner id nor the id of a merchant this"
        " deployment serves",
    )


def _channel_not_configured(delivery: Delivery, request: RefundRequest, partner: str) -> DeadLetter:
    log.warning(
        "refund.invalid",
        reason=CHANNEL_NOT_CONFIGURED,
        refund_id=request.refund_id,
        merchant=partner,
        channel=request.channel,
        message_id=delivery.message_id,
    )
    return DeadLetter(
        delivery,
        CHANNEL_NOT_CONFIGURED,
        f"channel: {request.channel!r} needs an OpenAPI application (app_id and its keys),"
        f" and merchant {partner} has none",
    )


def handle_deliveries(
    db: Database, deliveries: Sequence[Delivery], merchants: Merchants
) -> list[DeadLetter]:
    """Validate, deduplicate, check the worker's rules and store; return the dead letters."""
    dead: list[DeadLetter] = []
    candidates: list[_Candidate] = []
    for delivery in deliveries:
        try:
            request = parse_refund_requested(delivery.body)
        except EventValidationError as exc:
            log.warning(
                "refund.invalid",
                reason=exc.reason,
                detail=exc.detail,
                message_id=delivery.message_id,
            )
            dead.append(DeadLetter(delivery, exc.reason, exc.detail))
            continue
        merchant = merchants.resolve(request.merchant)
        if merchant is None:
            dead.append(_unknown_merchant(delivery, request))
            continue
        if request.is_openapi and merchant.openapi_app is None:
            dead.append(_channel_not_configured(delivery, request, merchant.partner))
            continue
        candidates.append(_Candidate(delivery, request, request.content_hash(), merchant.partner))

    if candidates:
        dead.extend(_store(db, candidates))
    if dead:
        INTAKE_MESSAGES.labels("dead_lettered").inc(len(dead))
    return dead


def _judge(c: _Candidate, standing: tuple[str, str] | None) -> list[DeadLetter]:
    """A repeat of a refund_id against the request that stands: a no-op or a conflict."""
    if standing == c.identity:
        _duplicate(c)
        return []
    return [_conflict(c)]


def _store(db: Database, candidates: list[_Candidate]) -> list[DeadLetter]:
    """Store the micro-batch's new refunds; judge every repeat against the request that stands.

    The first request stands: the one stored before, or, for a refund_id not stored
    yet, the first of the micro-batch (arrival order). Every other delivery of that
    refund_id is compared with the standing request, never with another repeat, so a
    re-send of the stored request stays a no-op even next to a conflicting one.
    """
    dead: list[DeadLetter] = []
    with db.transaction() as conn:
        # Trade locks first, then everything read inside them: a refund another replica
        # stored meanwhile is then seen as stored (a repeat), never counted a second time
        # in its trade's tally.
        ledger.lock_trades(conn, [c.request.payment_key for c in candidates])
        known = ledger.existing_hashes(conn, sorted({c.request.refund_id for c in candidates}))
        fresh: list[_Candidate] = []
        repeats: list[_Candidate] = []  # later deliveries of a refund_id first seen in this batch
        firsts: set[str] = set()
        for c in candidates:
            refund_id = c.request.refund_id
            if refund_id in known:
                dead.extend(_judge(c, known[refund_id]))
            elif refund_id in firsts:
                repeats.append(c)
            else:
                firsts.add(refund_id)
                fresh.append(c)
        if not fresh:
            return dead

        tallies = ledger.trade_tallies(
            conn, [c.request.trade_no for c in fresh if c.request.trade_no is not None]
        )
        rows: list[ledger.NewRefund] = []
        for c in fresh:
            r = c.request
            # A refund by out_trade_no or of a red envelope has no trade tally to count in.
            tally = tallies[r.trade_no] if r.trade_no is not None else TradeTally()
            code = check_refund(tally, r.amount, r.trade_amount)
            rows.append(
                ledger.NewRefund(
                    refund_id=r.refund_id,
                    event_id=r.event_id,
                    trade_no=r.trade_no,
                    amount=r.amount,
                    reason=r.reason,
                    trade_amount=r.trade_amount,
                    order_id=r.order_id,
                    metadata=r.metadata,
                    requested_at=r.requested_at,
                    content_hash=c.content_hash,
                    state=RefundState.REJECTED if code else RefundState.PENDING,
                    code=code,
                    partner=c.partner,
                    channel=r.channel,
                    out_trade_no=r.out_trade_no,
                    auth_no=r.auth_no,
                    out_request_no=out_request_no(r.refund_id) if r.is_openapi else None,
                )
            )
        inserted = ledger.insert_refunds(conn, rows)

        # A refund_id stored meanwhile under another trade_no (so another trade's lock)
        # may still have beaten us to the insert: that row stands instead.
        standing = {c.request.refund_id: c.identity for c in fresh}
        raced = [c for c in fresh if c.request.refund_id not in inserted]
        if raced:
            now_known = ledger.existing_hashes(conn, [c.request.refund_id for c in raced])
            for c in raced:
                standing[c.request.refund_id] = now_known.get(c.request.refund_id, ("", ""))
                dead.extend(_judge(c, standing[c.request.refund_id]))
        for c in repeats:
            dead.extend(_judge(c, standing[c.request.refund_id]))

        rejected = [
            r.refund_id for r in rows if r.state == RefundState.REJECTED and r.refund_id in inserted
        ]
        record_completions(conn, ledger.completions_for(conn, rejected))

    INTAKE_MESSAGES.labels("rejected").inc(len(rejected))
    INTAKE_MESSAGES.labels("stored").inc(len(inserted) - len(rejected))
    for row in rows:
        if row.refund_id in inserted:
            log.info(
                "refund.received",
                refund_id=row.refund_id,
                trade_no=row.trade_no,
                merchant=row.partner,
                channel=row.channel,
                out_request_no=row.out_request_no,
                amount=str(row.amount),
                state=row.state,
                code=row.code,
            )
    return dead
