"""The submission tests' world: a sandbox gateway, a notify receiver, a client, a ledger."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tests.support.ledger import delivery, handle_deliveries, merchants_of, request, trade
from tests.support.sandbox import NotifyReceiver, RunningSandbox, run_sandbox
from worker.adapters.gateway.client import GatewayClient
from worker.adapters.gateway.query import RefundQueryClient
from worker.adapters.postgres import ledger
from worker.adapters.postgres.pool import Database
from worker.domain.merchants import Merchants
from worker.mapi import Merchant
from worker.services.notifications import process_notification
from worker.services.packing import pack_pending
from worker.services.reconciler import ReconcileReport, reconcile_batch
from worker.services.submission import SubmitResult, submit_batch


def now_utc() -> datetime:
    return datetime.now(tz=UTC)


@dataclass
class Env:
    db: Database
    sandbox: RunningSandbox
    receiver: NotifyReceiver
    merchant: Merchant
    gateway: GatewayClient
    query: RefundQueryClient

    @property
    def merchants(self) -> Merchants:
        return merchants_of(self.merchant)

    def submit(
        self, batch_no: str, clock: Any = now_utc, merchant: Merchant | None = None
    ) -> SubmitResult:
        return submit_batch(
            self.db,
            lambda _merchant: self.gateway,
            merchants_of(merchant or self.merchant),
            batch_no,
            clock=clock,
            lease_seconds=0.5,
        )

    def fresh_batch(self, count: int, *, prefix: str = "r", amount: str = "1.00") -> str:
        """`count` refunds of fresh sandbox trades, packed into one batch; its batch_no."""
        base = uuid.uuid4().int % 10**12
        trades = [f"2026112288{base:012d}{n:04d}" for n in range(count)]
        self.sandbox.client.create_trades((t, "100.00") for t in trades)
        handle_deliveries(
            self.db,
            [delivery(request(f"{prefix}-{n}", t, amount)) for n, t in enumerate(trades)],
            self.merchants,
        )
        (batch_no,) = pack_pending(
            self.db,
            max_items=1000,
            max_wait=3600,
            merchants=self.merchants,
            clock=now_utc,
            force=True,
        )
        return batch_no

    def reconcile(
        self, batch_no: str, clock: Any = now_utc, release_after: float = 0.0
    ) -> ReconcileReport:
        return reconcile_batch(
            self.db,
            lambda _partner: self.query,
            batch_no,
            clock=clock,
            release_after_seconds=release_after,
        )

    def batch(self, batch_no: str) -> ledger.Batch:
        with self.db.transaction() as conn:
            found = ledger.lock_batch(conn, batch_no)
        assert found is not None
        return found

    def refund_states(self) -> dict[str, int]:
        with self.db.transaction() as conn:
            rows = conn.execute("SELECT state, count(*) FROM refunds GROUP BY state").fetchall()
        return {str(r[0]): int(r[1]) for r in rows}

    def deliver_notifications(self, expected: int, timeout: float = 15.0) -> list[str]:
        """Apply every notification the sandbox posted (waiting for `expected` distinct ids)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            forms = {r.form["notify_id"]: r.form for r in self.receiver.received if r.form}
            if len(forms) >= expected:
                break
            time.sleep(0.05)
        forms = {r.form["notify_id"]: r.form for r in self.receiver.received if r.form}
        assert len(forms) >= expected, f"got {len(forms)} notifications, expected {expected}"
        return [process_notification(self.db, "batch_refund", f, now_utc()) for f in forms.values()]


@contextmanager
def open_env(db: Database) -> Iterator[Env]:
    """A sandbox gateway, a notify receiver and a client for it, around the test's ledger."""
    with NotifyReceiver() as receiver, run_sandbox(process_delay=0.05, time_factor=0.0001) as sb:
        merchant = Merchant(
            partner=sb.partner,
            charset="utf-8",
            sign_type="MD5",
            md5_key=sb.md5_key,
            notify_url=receiver.url,
        )
        gateway = GatewayClient(
            sb.gateway_url,
            charset="utf-8",
            partner=sb.partner,
            connect_timeout=2.0,
            read_timeout=1.0,
        )
        query = RefundQueryClient(sb.gateway_url, merchant, connect_timeout=2.0, read_timeout=1.0)
        try:
            yield Env(db, sb, receiver, merchant, gateway, query)
        finally:
            query.close()
            gateway.close()


def make_batches(env: Env, refunds: int, trades: int | None = None, prefix: str = "r") -> list[str]:
    trades = trades or refunds
    msgs = [
        delivery(request(f"{prefix}-{uuid.uuid4().hex[:6]}-{i}", trade(i % trades), "1.00"))
        for i in range(refunds)
    ]
    assert handle_deliveries(env.db, msgs, env.merchants) == []
    return pack_pending(
        env.db, max_items=1000, max_wait=0, merchants=env.merchants, clock=now_utc, force=True
    )
