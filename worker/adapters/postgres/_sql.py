"""Small helpers shared by the ledger's statements (parameters as JSON, row mapping)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

from worker.adapters.postgres.records import Completion
from worker.contracts.json_text import compact

# --- intake -----------------------------------------------------------------


def _json_list(values: Iterable[str | int]) -> str:
    """A list parameter as one JSON text (see `_TEXTS`): C to build, no per-element adapting."""
    return compact(list(values))


# A text[] built server-side from a `_json_list` parameter, once per statement (an InitPlan),
# so `= ANY(...)` keeps its index scan.
_TEXTS = "ARRAY(SELECT json_array_elements_text(%s::json))"


def _money(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _completion(row: Sequence[Any]) -> Completion:
    return Completion(
        refund_id=row[0],
        trade_no=row[1],
        amount=row[2],
        order_id=row[3],
        metadata=row[4],
        status=row[5],
        code=row[6] or "",
        batch_no=row[7],
        completed_at=row[8],
        partner=row[9],
        channel=row[10] or "batch",
        gateway_ids={
            "out_trade_no": row[11],
            "auth_no": row[12],
            "out_request_no": row[13],
            "operation_id": row[14],
            "gmt_refund_pay": row[15],
        },
    )


_COMPLETION_COLUMNS = (
    "f.refund_id, f.trade_no, f.amount, f.order_id, f.metadata, f.state, f.code,"
    " f.batch_no, f.completed_at, f.partner, f.channel, f.out_trade_no, f.auth_no,"
    " f.out_request_no, f.operation_id, f.gmt_refund_pay"
)


def _outcomes_json(outcomes: Sequence[tuple[str, str, str]]) -> str:
    return compact([{"refund_id": o[0], "state": o[1], "code": o[2]} for o in outcomes])


_BATCH_VIEW = (
    "batch_no, batch_day, state, attempts, maybe_sent, operator_flag,"
    " last_attempt_at, created_at, queries, partner, service"
)
