"""The fault suite's OpenAPI payment witness catches what it is there to catch."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tests.chaos.checks import Result
from tests.chaos.openapi_books import OpenApiState, check_openapi_payments, gather

TRADE, OUT, AUTH = "2026000870000000000000001", "out-8-1", "2026000880000000000000001"


def ledger_rows() -> list[tuple[Any, ...]]:
    # refund_id, state, channel, trade_no, out_trade_no, auth_no, out_request_no, amount
    return [
        ("t-1", "succeeded", "trade", TRADE, None, None, "t_1", Decimal("5.00")),
        ("t-2", "succeeded", "trade", None, OUT, None, "t_2", Decimal("1.50")),
        ("c-1", "succeeded", "coupon", None, None, AUTH, "c_1", Decimal("3.00")),
    ]


def books() -> dict[str, Any]:
    return {
        "trade_refunds": [
            {"trade_no": TRADE, "out_trade_no": OUT, "out_request_no": "t_1", "amount": "5.00"},
            {"trade_no": TRADE, "out_trade_no": OUT, "out_request_no": "t_2", "amount": "1.50"},
        ],
        "coupon_refunds": [{"auth_no": AUTH, "out_request_no": "c_1", "amount": "3.00"}],
    }


def state(
    rows: list[tuple[Any, ...]] | None = None,
    ledger: dict[str, Any] | None = None,
    flags: dict[str, Any] | None = None,
) -> OpenApiState:
    summary = {"openapi": {"double_executed": [], "over_refunded": [], **(flags or {})}}
    return gather(lambda *_: rows or ledger_rows(), ledger or books(), summary)


def checked(s: OpenApiState) -> Result:
    result = Result("unit", "short", 3, 1.0)
    check_openapi_payments(result, s)
    return result


def test_books_that_match_the_ledger_pass() -> None:
    result = checked(state())
    assert result.passed, result.violations
    assert result.double_paid == 0 and result.notes["openapi_paid"] == 3


def test_a_refund_made_twice_is_paid_twice() -> None:
    ledger = books()
    ledger["coupon_refunds"].append(dict(ledger["coupon_refunds"][0]))
    result = checked(state(ledger=ledger))
    assert result.double_paid == 1
    assert any("does not hold as succeeded" in v for v in result.violations)


def test_a_refund_succeeded_in_the_ledger_but_not_made_is_reported() -> None:
    ledger = books()
    ledger["trade_refunds"].pop()
    result = checked(state(ledger=ledger))
    assert result.violations == ["1 OpenAPI refunds succeeded but were never paid"]


def test_a_refund_still_open_may_already_be_paid() -> None:
    rows = ledger_rows()
    rows[0] = (*rows[0][:1], "submitted", *rows[0][2:])
    result = checked(state(rows=rows))
    assert result.passed, result.violations
    assert result.notes["openapi_paid_not_yet_known"] == 1


def test_a_refund_paid_on_another_envelope_is_reported() -> None:
    ledger = books()
    ledger["coupon_refunds"][0]["auth_no"] = "2026000880000000000000002"
    result = checked(state(ledger=ledger))
    assert any("another trade or envelope" in v for v in result.violations), result.violations


def test_the_books_red_flags_are_violations() -> None:
    flag = {"kind": "envelope", "number": AUTH, "out_request_no": "c_1", "times": 2}
    result = checked(state(flags={"double_executed": [flag], "over_refunded": [flag]}))
    assert result.double_paid == 1
    assert len(result.violations) == 2
