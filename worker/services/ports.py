"""Plain types the services exchange with their adapters (no driver imported here).

Adapters (the gateway HTTP client, PostgreSQL, RabbitMQ) implement these
protocols and build these values; services depend on nothing else of theirs.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

__all__ = ["QueriedItem", "QueryResult", "RefundQuery"]


@dataclass(frozen=True, slots=True)
class QueriedItem:
    """One refund the gateway lists in a `refund_fastpay_query` answer."""

    batch_no: str | None
    trade_no: str
    code: str
    amount: Decimal | None
    raw: str = ""


@dataclass(frozen=True, slots=True)
class QueryResult:
    """What one `refund_fastpay_query` established (never more than the answer proves).

    `answer` is `found` (items listed), `not_found` (`REFUND_NOT_EXIST`), `refused`
    (the query itself was refused: `error_code` says why) or `no_answer` (network
    trouble, an error page, an unreadable body: nothing was learnt). A `found` answer
    is `complete` only when every entry in it could be read; a partial one still
    proves what it lists, but never that a trade is absent.
    """

    answer: str
    error_code: str | None = None
    items: tuple[QueriedItem, ...] = ()
    detail: str = ""
    complete: bool = True


class RefundQuery(Protocol):
    def query_refunds(
        self, *, batch_no: str | None = None, trade_no: str | None = None
    ) -> QueryResult: ...
