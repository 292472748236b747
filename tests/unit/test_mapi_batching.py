"""Batch packing: the gateway's batch rules and greedy first fit in arrival order."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.mapi import RefundItem, pack_batches


@dataclass(frozen=True)
class Refund:
    refund_id: int
    trade_no: str


def refunds(trades: list[str]) -> list[Refund]:
    return [Refund(n, trade) for n, trade in enumerate(trades)]


def reference_first_fit(items: list[Refund], max_items: int) -> list[list[Refund]]:
    """The rule as written, in the slowest, most obvious way."""
    batches: list[list[Refund]] = []
    for item in items:
        for batch in batches:
            if len(batch) < max_items and all(o.trade_no != item.trade_no for o in batch):
                batch.append(item)
                break
        else:
            batches.append([item])
    return batches


trade_lists = st.lists(st.sampled_from("ABCDEFGHIJ"), max_size=120)
sizes = st.integers(min_value=1, max_value=12)


@given(trade_lists, sizes)
def test_invariants(trades: list[str], max_items: int) -> None:
    items = refunds(trades)
    batches = pack_batches(items, max_items=max_items)
    flat = [item for batch in batches for item in batch]
    assert sorted(i.refund_id for i in flat) == list(range(len(items)))  # each exactly once
    for batch in batches:
        assert batch and len(batch) <= max_items
        assert len({item.trade_no for item in batch}) == len(batch)
        ids = [item.refund_id for item in batch]
        assert ids == sorted(ids)  # arrival order inside a batch
    batch_of = {item.refund_id: n for n, batch in enumerate(batches) for item in batch}
    for trade in set(trades):
        mine = [batch_of[item.refund_id] for item in items if item.trade_no == trade]
        assert mine == sorted(mine) and len(set(mine)) == len(mine)  # trade order kept
    if trades:
        most = max(Counter(trades).values())
        assert len(batches) >= max(most, -(-len(trades) // max_items))


@given(trade_lists, sizes)
def test_matches_the_rule_written_naively(trades: list[str], max_items: int) -> None:
    items = refunds(trades)
    assert pack_batches(items, max_items=max_items) == reference_first_fit(items, max_items)


@given(st.integers(min_value=0, max_value=3000), st.integers(min_value=1, max_value=1000))
def test_distinct_trades_use_the_minimum_number_of_batches(count: int, max_items: int) -> None:
    items = refunds([f"{n:016d}" for n in range(count)])
    batches = pack_batches(items, max_items=max_items)
    assert len(batches) == -(-count // max_items)
    assert [i for b in batches for i in b] == items  # arrival order fully kept


def test_second_refund_of_a_trade_waits_for_the_next_batch() -> None:
    items = refunds(["A", "B", "A", "C", "A"])
    batches = pack_batches(items, max_items=1000)
    assert [[i.trade_no for i in b] for b in batches] == [["A", "B", "C"], ["A"], ["A"]]


def test_a_later_item_fills_an_earlier_batch_with_room() -> None:
    items = refunds(["A", "A", "B", "C"])
    batches = pack_batches(items, max_items=2)
    assert [[i.refund_id for i in b] for b in batches] == [[0, 2], [1, 3]]


def test_empty_input_gives_no_batches() -> None:
    assert pack_batches([]) == []


def test_works_with_refund_items() -> None:
    from decimal import Decimal

    items = [RefundItem("2016081821001004270231872174", Decimal("1.00")) for _ in range(3)]
    assert [len(b) for b in pack_batches(items)] == [1, 1, 1]


@pytest.mark.parametrize("bad", [0, -1, 1001, True, 2.0, "10"])
def test_max_items_must_be_between_1_and_1000(bad: object) -> None:
    with pytest.raises(ValueError, match="max_items"):
        pack_batches(refunds(["A"]), max_items=bad)  # type: ignore[arg-type]


def test_100k_items_pack_completely() -> None:
    """A sale-day backlog packs into batches holding every refund once, by the batch rules."""
    rng = random.Random(7)
    trades = [f"{rng.randrange(30_000):016d}" for _ in range(100_000)]
    batches = pack_batches(refunds(trades))
    assert sum(len(b) for b in batches) == 100_000
    assert all(len(b) <= 1000 and len({r.trade_no for r in b}) == len(b) for b in batches)
    same_trade = refunds(["2016081821001004270231872174"] * 100_000)
    assert len(pack_batches(same_trade)) == 100_000
