"""The sandbox's books: item rules, executions, red flags, and the journal that replays them."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sandbox.journal import Journal
from sandbox.ledger import Ledger
from sandbox.protocol import SUCCESS
from sandbox.records import (
    BatchItem,
    BatchRecord,
    ClockRecord,
    GaveUpRecord,
    Record,
    RequestRecord,
    SendRecord,
    TradeRecord,
    record_from_json,
)
from sandbox.reports import ledger_summary, ledger_view
from tests.support.sandbox import PARTNER
from worker.domain.errors import ConfigError

T1, T2, T3 = (f"20161122210010042700000000{i:02d}" for i in (1, 2, 3))
AT = "2026-11-22T01:00:00+00:00"
D = Decimal


def trade(trade_no: str, amount: str, status: str = "paid") -> TradeRecord:
    return TradeRecord(trade_no=trade_no, amount=D(amount), status=status, ts=1.0, at=AT)


def batch(
    ledger: Ledger,
    batch_no: str,
    items: list[tuple[str, str]],
    *,
    auto: str | None = None,
    notify: bool = True,
    fault: dict[str, str] | None = None,
) -> BatchRecord:
    planned = ledger.plan_items(
        ((t, D(a), "reason") for t, a in items),
        auto_amount=None if auto is None else D(auto),
        item_fault=None if fault is None else fault.get,
    )
    record = BatchRecord(
        ts=2.0,
        at=AT,
        service="refund_fastpay_by_platform_nopwd",
        charset="utf-8",
        sign_type="MD5",
        batch_no=batch_no,
        refund_date="2026-11-22 09:00:00",
        notify_url="http://127.0.0.1:1/n" if notify else None,
        notify_id=f"nid-{batch_no}" if notify else None,
        items=planned,
        auto_amount=None if auto is None else D(auto),
    )
    ledger.apply(record)
    return record


def codes(record: BatchRecord) -> list[str]:
    return [item[3] for item in record.items]


def test_item_rules() -> None:
    ledger = Ledger()
    ledger.apply(trade(T1, "10.00"))
    ledger.apply(trade(T2, "10.00", "closed"))
    ledger.apply(trade(T3, "10.00", "finished"))
    unknown = "2016112221001004270000000099"
    record = batch(
        ledger, "20261122001", [(T1, "4.00"), (T2, "1.00"), (T3, "1.00"), (unknown, "1.00")]
    )
    assert codes(record) == ["SUCCESS", "TRADE_HAS_CLOSED", "TRADE_STATUS_ERROR", "TRADE_NOT_EXIST"]
    over = batch(ledger, "20261122002", [(T1, "6.01")])
    assert codes(over) == ["REFUND_AMOUNT_NOT_VALID"]
    exact = batch(ledger, "20261122003", [(T1, "6.00")])
    assert codes(exact) == ["SUCCESS"]
    assert ledger.trades[T1].refunded == D("10.00")
    assert [e[0] for e in ledger.trades[T1].executions] == ["20261122001", "20261122003"]
    assert unknown not in ledger.trades


def test_ninety_nine_refunds_per_trade() -> None:
    ledger = Ledger()
    ledger.apply(trade(T1, "100.00"))
    for n in range(99):
        assert codes(batch(ledger, f"20261122{n:03d}x", [(T1, "0.01")])) == ["SUCCESS"]
    assert codes(batch(ledger, "20261122last", [(T1, "0.01")])) == ["TRADE_STATUS_ERROR"]
    assert len(ledger.trades[T1].executions) == 99


def test_auto_trades_are_created_paid_with_the_configured_amount() -> None:
    ledger = Ledger()
    record = batch(ledger, "20261122001", [(T1, "3.00")], auto="5.00")
    assert codes(record) == ["SUCCESS"]
    created = ledger.trades[T1]
    assert (created.paid, created.auto, created.refunded) == (D("5.00"), True, D("3.00"))
    assert codes(batch(ledger, "20261122002", [(T1, "2.01")], auto="5.00")) == [
        "REFUND_AMOUNT_NOT_VALID"
    ]


def test_injected_item_failure_only_hits_items_that_would_succeed() -> None:
    ledger = Ledger()
    ledger.apply(trade(T2, "1.00", "closed"))
    fault = {T1: "SELLER_BALANCE_NOT_ENOUGH", T2: "SELLER_BALANCE_NOT_ENOUGH"}
    record = batch(ledger, "20261122001", [(T1, "1.00"), (T2, "1.00")], auto="9.00", fault=fault)
    assert codes(record) == ["SELLER_BALANCE_NOT_ENOUGH", "TRADE_HAS_CLOSED"]
    assert ledger.trades[T1].executions == []


def test_summary_counts_and_red_flags() -> None:
    ledger = Ledger()
    record = batch(ledger, "20261122001", [(T1, "1.00"), (T2, "2.00")], auto="10.00")
    batch(ledger, "20261122002", [(T1, "1.00")], auto="10.00")
    summary = ledger_summary(ledger)
    assert summary["batches_accepted"] == 2
    assert summary["refunds_executed"] == 3
    assert summary["amount_executed"] == "4.00"
    assert summary["trades_refunded_more_than_once"] == 1
    assert summary["double_executed"] == []
    assert summary["over_refunded"] == []
    # The same batch executed twice is exactly what double_executed exists to catch.
    ledger.apply(record)
    assert ledger_summary(ledger)["double_executed"] == [
        {"partner": PARTNER, "batch_no": "20261122001", "trade_no": T1},
        {"partner": PARTNER, "batch_no": "20261122001", "trade_no": T2},
    ]
    # A trade whose paid amount drops below what was refunded is over-refunded.
    ledger.apply(trade(T2, "1.00"))
    assert ledger_summary(ledger)["over_refunded"] == [
        {"trade_no": T2, "paid": "1.00", "refunded": "4.00"}
    ]


def test_a_batch_holding_a_trade_twice_is_flagged_once_per_repeat() -> None:
    ledger = Ledger()
    items = ((T1, D("1.00"), "r", SUCCESS, True), (T1, D("1.00"), "r", SUCCESS, True))
    ledger.apply(batch_record("20261122001", items, auto="10.00"))
    assert ledger_summary(ledger)["double_executed"] == [
        {"partner": PARTNER, "batch_no": "20261122001", "trade_no": T1}
    ]
    assert ledger_summary(ledger)["refunds_executed"] == 2


def test_notification_bookkeeping() -> None:
    ledger = Ledger()
    batch(ledger, "20261122001", [(T1, "1.00")], auto="10.00")
    batch(ledger, "20261122002", [(T2, "1.00")], auto="10.00", notify=False)
    assert [n.notify_id for n in ledger.pending_notifications()] == ["nid-20261122001"]

    def send(kind: str, ack: bool = False) -> None:
        status = None if kind == "lost" else 200
        ledger.apply(SendRecord("nid-20261122001", kind, 3.0, AT, status, ack))  # type: ignore[arg-type]

    send("lost")
    send("genuine")
    send("forged", ack=True)
    note = ledger.notifications["nid-20261122001"]
    assert (note.attempts, note.sends, note.lost, note.forged_acknowledged) == (2, 1, 1, 1)
    assert note.pending  # a forged copy answered `success` acknowledges nothing
    send("genuine", ack=True)
    send("duplicate", ack=True)
    assert note.acknowledged and not note.pending
    assert (note.attempts, note.sends, note.duplicates) == (3, 3, 1)
    assert ledger_summary(ledger)["notifications"]["pending"] == 0


def test_given_up_notification_is_no_longer_pending() -> None:
    ledger = Ledger()
    batch(ledger, "20261122001", [(T1, "1.00")], auto="10.00")
    ledger.apply(GaveUpRecord("nid-20261122001", 4.0, AT))
    summary = ledger_summary(ledger)["notifications"]
    assert (summary["pending"], summary["given_up"]) == (0, 1)


def test_views_narrow_to_a_batch_or_a_trade() -> None:
    ledger = Ledger()
    batch(ledger, "20261122001", [(T1, "1.00"), (T2, "1.00")], auto="10.00")
    batch(ledger, "20261122002", [(T3, "1.00")], auto="10.00")
    ledger.apply(
        RequestRecord(
            5.0, AT, "refund_fastpay_by_platform_nopwd", "20261122002", "DUPLICATE_BATCH_NO", 1
        )
    )
    by_batch = ledger_view(ledger, batch_no="20261122002")
    assert [b["batch_no"] for b in by_batch["batches"]] == ["20261122002"]
    assert list(by_batch["trades"]) == [T3]
    assert [r["code"] for r in by_batch["refused"]] == ["DUPLICATE_BATCH_NO"]
    by_trade = ledger_view(ledger, trade_no=T2)
    assert [b["batch_no"] for b in by_trade["batches"]] == ["20261122001"]
    assert by_trade["trades"][T2]["executions"][0]["amount"] == "1.00"
    assert list(by_trade["notifications"]) == ["nid-20261122001"]


# -- records and the journal -----------------------------------------------------------


def sample_records() -> list[Record]:
    ledger = Ledger()
    return [
        trade(T1, "10.00"),
        RequestRecord(1.5, AT, None, None, "ILLEGAL_SERVICE"),
        batch(ledger, "20261122001", [(T1, "1.00"), (T2, "0.50")], auto="100.00"),
        SendRecord("nid-20261122001", "genuine", 3.0, AT, 500, False, None),
        SendRecord("nid-20261122001", "lost", 3.5, AT),
        GaveUpRecord("nid-20261122001", 4.0, AT),
        ClockRecord(86400.0, 5.0),
    ]


def test_every_record_survives_a_json_round_trip() -> None:
    for record in sample_records():
        assert record_from_json(json.loads(json.dumps(record.to_json()))) == record


def test_journal_replays_into_the_same_books(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    live = Ledger()
    for record in sample_records():
        journal.append(record)
        live.apply(record)
    journal.close()
    replayed = Ledger()
    for record in Journal(tmp_path).replay():
        replayed.apply(record)
    assert ledger_summary(replayed) == ledger_summary(live)
    assert ledger_view(replayed) == ledger_view(live)
    assert replayed.clock_offset == 86400.0


def test_torn_last_line_is_dropped_and_cut_off(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    for record in sample_records()[:3]:
        journal.append(record)
    journal.close()
    with journal.path.open("ab") as handle:
        handle.write(b'{"type": "trade", "trade_no": "20161')
    assert len(list(Journal(tmp_path).replay())) == 3
    journal = Journal(tmp_path)
    journal.append(trade(T3, "1.00"))
    journal.close()
    assert [type(r).__name__ for r in Journal(tmp_path).replay()][-1] == "TradeRecord"


def test_damage_in_the_middle_stops_the_replay(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    for record in sample_records()[:2]:
        journal.append(record)
    journal.close()
    lines = journal.path.read_bytes().splitlines(keepends=True)
    journal.path.write_bytes(b"not json\n" + b"".join(lines))
    with pytest.raises(ConfigError, match="line 1 is damaged"):
        list(Journal(tmp_path).replay())


def test_a_damaged_amount_in_the_middle_stops_the_replay_with_a_clear_error(
    tmp_path: Path,
) -> None:
    journal = Journal(tmp_path)
    for record in sample_records()[:2]:
        journal.append(record)
    journal.close()
    first, *rest = journal.path.read_bytes().splitlines(keepends=True)
    damaged = json.loads(first)
    damaged["amount"] = "not-a-number"
    journal.path.write_bytes(json.dumps(damaged).encode() + b"\n" + b"".join(rest))
    with pytest.raises(ConfigError, match="line 1 is damaged"):
        list(Journal(tmp_path).replay())


def batch_record(
    batch_no: str, items: tuple[BatchItem, ...], *, auto: str | None = None
) -> BatchRecord:
    return BatchRecord(
        ts=2.0,
        at=AT,
        service="refund_fastpay_by_platform_nopwd",
        charset="utf-8",
        sign_type="MD5",
        batch_no=batch_no,
        refund_date="2026-11-22 09:00:00",
        notify_url="http://127.0.0.1:1/n",
        notify_id=f"nid-{batch_no}",
        items=items,
        auto_amount=None if auto is None else D(auto),
    )


cents = st.integers(min_value=1, max_value=3000).map(lambda n: D(n) / 100)
items_strategy = st.lists(
    st.tuples(
        st.text(max_size=30),
        cents,
        st.text(max_size=20),
        st.sampled_from([SUCCESS, "TRADE_NOT_EXIST", "A,B", ""]),
        st.booleans(),
    ),
    max_size=12,
).map(tuple)


@settings(max_examples=200)
@given(items_strategy)
def test_batch_items_survive_the_journal_line(items: tuple[BatchItem, ...]) -> None:
    record = batch_record("20261122001", items)
    line = json.dumps(record.to_json(), ensure_ascii=False)
    assert record_from_json(json.loads(line)) == record


def test_journals_that_wrote_items_as_columns_still_replay() -> None:
    items = ((T1, D("1.00"), "r", SUCCESS, True), (T2, D("2.50"), "r2", "TRADE_NOT_EXIST", False))
    record = batch_record("20261122001", items, auto="9.00")
    old = record.to_json()
    old["items"] = {
        "trade_no": f"{T1},{T2}",
        "amount": "1.00,2.50",
        "reason": ["r", "r2"],
        "code": f"{SUCCESS},TRADE_NOT_EXIST",
        "auto": "10",
    }
    assert record_from_json(old) == record


@pytest.mark.parametrize(
    "items",
    [
        {"trade_no": "1,2", "amount": "1.00", "reason": ["r", "r"], "code": "S,S", "auto": "11"},
        {"trade_no": "1", "amount": "1.00", "reason": ["r"], "code": "S", "auto": "10"},
        {"trade_no": "1", "amount": "1.00", "reason": "r", "code": "S", "auto": "1"},
        {"trade_no": "1", "amount": "x", "reason": ["r"], "code": "S", "auto": "1"},
        {"trade_no": "1", "amount": "1.00", "reason": ["r"], "code": "S"},
        [["1", "1.00", "r", "S"]],
        [["1", "x", "r", "S", True]],
    ],
)
def test_damaged_batch_items_are_refused(items: object) -> None:
    data = batch_record("20261122001", ()).to_json()
    data["items"] = items
    with pytest.raises((ValueError, KeyError, TypeError, ArithmeticError)):
        record_from_json(data)
