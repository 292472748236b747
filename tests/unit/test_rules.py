from decimal import Decimal

from worker.domain.rules import (
    MAX_REFUNDS_PER_TRADE,
    REFUND_COUNT_EXCEEDED,
    REFUND_TOTAL_EXCEEDS_TRADE_AMOUNT,
    TradeTally,
    check_refund,
)


def test_the_hundredth_refund_of_a_trade_is_rejected() -> None:
    tally = TradeTally()
    codes = [check_refund(tally, Decimal("1.00"), None) for _ in range(MAX_REFUNDS_PER_TRADE + 1)]
    assert codes[:MAX_REFUNDS_PER_TRADE] == [None] * MAX_REFUNDS_PER_TRADE
    assert codes[-1] == REFUND_COUNT_EXCEEDED
    assert tally.count == MAX_REFUNDS_PER_TRADE


def test_running_total_above_trade_amount_is_rejected_and_not_counted() -> None:
    tally = TradeTally()
    assert check_refund(tally, Decimal("60.00"), Decimal("100.00")) is None
    assert (
        check_refund(tally, Decimal("40.01"), Decimal("100.00"))
        == REFUND_TOTAL_EXCEEDS_TRADE_AMOUNT
    )
    assert check_refund(tally, Decimal("40.00"), Decimal("100.00")) is None
    assert tally.total == Decimal("100.00")
    assert tally.count == 2
