"""What the sandbox writes on the wire, read back with the worker's own protocol library."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sandbox.clock import SandboxClock
from sandbox.protocol import (
    MAX_DELIVERIES,
    RESEND_GAPS,
    format_result_details,
    new_notify_id,
    notify_time,
    resend_delay,
    success_num,
    sync_answer,
)
from worker.mapi import SyncStatus, is_valid_notify_id, parse_result_details, parse_sync_response


def test_accepted_answer_is_byte_for_byte_the_gateways() -> None:
    assert sync_answer(None) == (
        b'<?xml version="1.0" encoding="GBK"?>\n<alipay><is_success>T</is_success></alipay>'
    )
    assert parse_sync_response(sync_answer(None)).status is SyncStatus.ACCEPTED


@pytest.mark.parametrize("code", ["DUPLICATE_BATCH_NO", "ILLEGAL_SIGN", "BATCH_REFUND_LOCK_ERROR"])
def test_refusal_answer_carries_the_code(code: str) -> None:
    body = sync_answer(code)
    assert body.endswith(f"<is_success>F</is_success><error>{code}</error></alipay>".encode())
    parsed = parse_sync_response(body)
    assert parsed.status is SyncStatus.REFUSED
    assert parsed.error == code


@given(
    st.lists(
        st.tuples(
            st.integers(min_value=1, max_value=10**10),
            st.sampled_from(["SUCCESS", "TRADE_HAS_CLOSED", "SELLER_BALANCE_NOT_ENOUGH"]),
        ),
        min_size=1,
        max_size=50,
    )
)
def test_result_details_round_trip_through_the_worker_parser(rows: list[tuple[int, str]]) -> None:
    results = [
        (f"2016{index:024d}", (Decimal(cents) / 100).quantize(Decimal("0.01")), code)
        for index, (cents, code) in enumerate(rows)
    ]
    text = format_result_details(results)
    parsed = parse_result_details(text)
    assert [(i.trade_no, i.amount, i.code) for i in parsed] == results
    assert success_num(results) == sum(1 for i in parsed if i.succeeded)


def test_result_details_writes_two_decimals() -> None:
    text = format_result_details([("2016112221001004270000000001", Decimal("5.00"), "SUCCESS")])
    assert text == "2016112221001004270000000001^5.00^SUCCESS"


def test_resend_schedule_is_the_documented_one() -> None:
    # Deliveries 1..8; gaps 4m, 10m, 10m, 1h, 2h, 6h, 15h: about 24h22m in all.
    assert MAX_DELIVERIES == 8
    assert [resend_delay(n, 1.0) for n in range(1, 8)] == list(RESEND_GAPS)
    assert resend_delay(8, 1.0) is None
    assert sum(RESEND_GAPS) == (4 + 10 + 10) * 60 + (1 + 2 + 6 + 15) * 3600
    assert resend_delay(1, 0.001) == pytest.approx(0.24)
    with pytest.raises(ValueError):
        resend_delay(0, 1.0)


def test_notify_ids_look_like_alipays_and_do_not_repeat() -> None:
    ids = {new_notify_id() for _ in range(2000)}
    assert len(ids) == 2000
    for notify_id in list(ids)[:50]:
        assert is_valid_notify_id(notify_id)
        assert len(notify_id) == 34
        assert notify_id[:32] == notify_id[:32].lower()


def test_notify_time_is_beijing_time() -> None:
    assert notify_time(datetime(2026, 11, 22, 16, 30, 5, tzinfo=UTC)) == "2026-11-23 00:30:05"


def test_clock_offset_moves_the_beijing_date() -> None:
    base = datetime(2026, 11, 22, 15, 59, 0, tzinfo=UTC).timestamp()  # 23:59 in Beijing
    clock = SandboxClock(source=lambda: base)
    assert clock.today().isoformat() == "2026-11-22"
    clock.set_offset(120)
    assert clock.today().isoformat() == "2026-11-23"
    assert clock.offset_seconds == 120
    for bad in (float("nan"), float("inf"), 10**12, True):
        with pytest.raises(ValueError):
            clock.set_offset(bad)  # type: ignore[arg-type]
