"""Building ledger states for service tests against a real PostgreSQL database."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from worker.adapters.postgres import ledger
from worker.adapters.postgres.pool import Database
from worker.domain.merchants import MerchantProfile, Merchants
from worker.mapi import Merchant
from worker.services import intake
from worker.services.packing import pack_pending
from worker.services.ports import DeadLetter, Delivery

_tags = iter(range(1, 10**9))

# The one merchant of the service tests (the sandbox's default partner).
PARTNER = "2088000000000001"


def merchants_of(*gateways: Merchant) -> Merchants:
    """The deployment's merchants for these gateway identities, the first the default."""
    return Merchants([MerchantProfile(id=g.partner, gateway=g) for g in gateways])


MERCHANTS = merchants_of(
    Merchant(partner=PARTNER, charset="utf-8", sign_type="MD5", md5_key="k" * 32)
)


def handle_deliveries(
    db: Database, deliveries: Sequence[Delivery], merchants: Merchants = MERCHANTS
) -> list[DeadLetter]:
    """Intake's service for the test merchant(s)."""
    return intake.handle_deliveries(db, deliveries, merchants)


def delivery(body: bytes | dict[str, Any]) -> Delivery:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Delivery(
        delivery_tag=next(_tags),
        body=raw,
        message_id=str(uuid.uuid4()),
        headers={},
        redelivered=False,
        content_type="application/json",
        routing_key="refund.requested",
    )


def request(refund_id: str, trade_no: str, amount: str = "1.00", **extra: Any) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "refund_id": refund_id,
        "trade_no": trade_no,
        "amount": amount,
        **extra,
    }


def trade(n: int) -> str:
    return f"2026112221{n:014d}"


def fixed_clock() -> datetime:
    return datetime(2026, 11, 22, 4, 0, tzinfo=UTC)


def rows(db: Database, sql: str, *params: object) -> list[tuple[Any, ...]]:
    with db.transaction() as conn:
        return conn.execute(sql, params).fetchall()


def outbox_events(db: Database) -> list[dict[str, Any]]:
    return [json.loads(r[0]) for r in rows(db, "SELECT body FROM outbox ORDER BY id")]


def pack(
    db: Database, *, max_items: int = 1000, max_wait: float = 3600, force: bool = False
) -> list[str]:
    return pack_pending(
        db,
        max_items=max_items,
        max_wait=max_wait,
        merchants=MERCHANTS,
        clock=fixed_clock,
        force=force,
    )


def accepted_batch(
    db: Database, count: int = 4, *, amount: str = "2.50", prefix: str = "r"
) -> tuple[str, list[ledger.BatchItem]]:
    """`count` refunds of distinct trades in one batch the gateway accepted."""
    handle_deliveries(
        db,
        [
            delivery(request(f"{prefix}-{i}", trade(i), amount, order_id=f"o-{i}"))
            for i in range(count)
        ],
    )
    (batch_no,) = pack(db, force=True)
    with db.transaction() as conn:
        ledger.update_batch(conn, batch_no, state="accepted", maybe_sent=True)
        ledger.mark_submitted(conn, batch_no)
        items = ledger.batch_items(conn, batch_no)
    return batch_no, items


def notify_form(
    batch_no: str, results: list[tuple[str, str, str]], notify_id: str = "n-1"
) -> dict[str, str]:
    return {
        "notify_time": "2026-11-22 12:00:00",
        "notify_type": "batch_refund_notify",
        "notify_id": notify_id,
        "sign_type": "MD5",
        "sign": "0" * 32,
        "batch_no": batch_no,
        "success_num": str(sum(1 for r in results if r[2] == "SUCCESS")),
        "result_details": "#".join("^".join(r) for r in results),
    }


def openapi_merchants() -> Merchants:
    """The test merchant with an OpenAPI application (the keys of `tests.support.openapi`),
    and a second merchant without one."""
    from tests.support.openapi import alipay_keys, app_keys

    return Merchants(
        [
            MerchantProfile(
                id="shop-a",
                gateway=Merchant(
                    partner=PARTNER, charset="utf-8", sign_type="MD5", md5_key="k" * 32
                ),
                app_id=OPENAPI_APP_ID,
                app_private_key_pem=app_keys()[0].decode(),
                app_public_key_pem=alipay_keys()[1].decode(),
            ),
            MerchantProfile(
                id="shop-b",
                gateway=Merchant(
                    partner=OTHER_PARTNER, charset="utf-8", sign_type="MD5", md5_key="m" * 32
                ),
            ),
        ]
    )


OPENAPI_APP_ID = "2021000000000002"
OTHER_PARTNER = "2088000000000002"


def auth_no(n: int) -> str:
    return f"20261122100020018{n:011d}"
