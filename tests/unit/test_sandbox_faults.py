"""Fault sets: validation of the JSON, and the seeded dice with their counts."""

from __future__ import annotations

from typing import Any

import pytest

from sandbox.faults import FAULT_NAMES, FaultBook, parse_fault_set
from worker.domain.errors import ConfigError

T1 = "2016112221001004270000000001"
T2 = "2016112221001004270000000002"


def book(spec: dict[str, Any], seed: int | None = 1) -> FaultBook:
    return FaultBook(parse_fault_set(spec), seed=seed)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ([], "must be a JSON object"),
        ({"explode": {}}, "unknown fault"),
        ({"http_5xx": 3}, "must be an object"),
        ({"http_5xx": {"rate": 1.5}}, "rate"),
        ({"http_5xx": {"rate": "0.5"}}, "rate"),
        ({"http_5xx": {"count": -1}}, "count"),
        ({"http_5xx": {"count": True}}, "count"),
        ({"http_5xx": {"status": 404}}, "status"),
        ({"http_5xx": {"accept": "yes"}}, "accept"),
        ({"http_5xx": {"service": "all"}}, "service"),
        ({"hang": {"seconds": -1}}, "seconds"),
        ({"hang": {"seconds": float("nan")}}, "seconds"),
        ({"slow": {"colour": "red"}}, "no option"),
        ({"item_failure": {"code": "lower_case"}}, "code"),
        ({"item_failure": {"trade_nos": ["123"]}}, "trade_nos"),
        ({"notify_reorder": {"after": 0}}, "after"),
        ({"garbage": {"body": "json"}}, "body"),
        ({"garbage": {"service": "summary"}}, "service"),
        ({"result_shapes": {"odd_codes": "REFUND_CHARGE_ERROR_X"}}, "odd_codes"),
        ({"result_shapes": {"odd_codes": ["SUCCESS"]}}, "odd_codes"),
        ({"result_shapes": {"odd_codes": ["lower"]}}, "odd_codes"),
        ({"notify_never": {"service": "query"}}, "no option"),
        ({"seed": "x"}, "seed"),
    ],
)
def test_bad_fault_sets_are_refused_with_a_reason(spec: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_fault_set(spec)


def test_every_fault_accepts_true_and_an_empty_object() -> None:
    parsed = parse_fault_set({name: True for name in FAULT_NAMES})
    assert set(parsed.faults) == set(FAULT_NAMES)
    assert parse_fault_set({name: {} for name in FAULT_NAMES}).faults.keys() == parsed.faults.keys()


def test_count_only_fires_exactly_that_many_times() -> None:
    faults = book({"lock_error": {"count": 3}})
    fired = [faults.draw("lock_error") is not None for _ in range(10)]
    assert fired == [True] * 3 + [False] * 7
    assert faults.snapshot()["faults"]["lock_error"]["remaining"] == 0
    assert not faults.active("lock_error")


def test_rate_zero_never_fires_and_rate_one_always_does() -> None:
    faults = book({"lock_error": {"rate": 0.0}, "slow": {"rate": 1.0}})
    assert all(faults.draw("lock_error") is None for _ in range(200))
    assert all(faults.draw("slow") is not None for _ in range(200))


def test_rate_is_roughly_respected_and_capped_by_count() -> None:
    faults = book({"notify_lost": {"rate": 0.25}})
    hits = sum(faults.draw("notify_lost") is not None for _ in range(4000))
    assert 800 < hits < 1200
    capped = book({"notify_lost": {"rate": 0.5, "count": 10}})
    assert sum(capped.draw("notify_lost") is not None for _ in range(1000)) == 10


def test_same_seed_gives_the_same_sequence() -> None:
    def sequence(seed: int) -> list[bool]:
        faults = book({"http_5xx": {"rate": 0.5}}, seed=seed)
        return [faults.draw("http_5xx") is not None for _ in range(64)]

    assert sequence(7) == sequence(7)
    assert sequence(7) != sequence(8)


def test_seed_in_the_fault_set_reseeds() -> None:
    faults = FaultBook(seed=1)
    faults.replace(parse_fault_set({"http_5xx": {"rate": 0.5}, "seed": 99}))
    first = [faults.draw("http_5xx") is not None for _ in range(32)]
    faults.replace(parse_fault_set({"http_5xx": {"rate": 0.5}, "seed": 99}))
    assert [faults.draw("http_5xx") is not None for _ in range(32)] == first
    assert faults.snapshot()["seed"] == 99


def test_options_have_defaults_and_overrides() -> None:
    faults = book({"http_5xx": {"status": 502}, "hang": {}})
    five = faults.draw("http_5xx")
    assert five is not None and five.option("status") == 502 and five.option("accept") is False
    hang = faults.draw("hang")
    assert hang is not None and hang.option("seconds") == 60.0 and hang.option("accept") is True


def test_gateway_faults_apply_to_the_service_they_name() -> None:
    faults = book({"http_5xx": {"service": "notify_verify"}, "slow": {"service": "any"}})
    assert faults.draw("http_5xx", service="refund") is None
    assert faults.draw("http_5xx", service="notify_verify") is not None
    assert faults.draw("slow", service="refund") is not None
    assert faults.draw("slow", service="notify_verify") is not None
    plain = book({"lock_error": {}})
    assert plain.draw("lock_error", service="notify_verify") is None


def test_item_failure_can_target_trades() -> None:
    faults = book({"item_failure": {"code": "BUYER_ERROR", "trade_nos": [T1]}})
    assert faults.item_failure(T2) is None
    assert faults.item_failure(T1) == "BUYER_ERROR"


def test_sync_item_failure_sticks_to_the_trade_it_picked() -> None:
    faults = book({"sync_item_failure": {"count": 1}})
    assert faults.sync_item_failure([T1, T2]) == "TRADE_STATUS_ERROR"  # T1 drawn, fails
    # The count is spent, but T1 keeps failing; T2 was never drawn as failing.
    assert faults.sync_item_failure([T2, T1]) == "TRADE_STATUS_ERROR"
    assert faults.sync_item_failure([T2]) is None
    faults.clear()
    assert faults.sync_item_failure([T1]) is None


def test_snapshot_reports_what_fired() -> None:
    faults = book({"notify_duplicate": {"count": 2}, "slow": {"rate": 0.0}})
    faults.draw("notify_duplicate")
    snap = faults.snapshot()
    assert snap["faults"]["notify_duplicate"] == {"count": 2, "fired": 1, "remaining": 1}
    assert snap["faults"]["slow"]["fired"] == 0
    assert snap["fired_total"] == {"notify_duplicate": 1}


def test_query_faults_and_their_new_options() -> None:
    faults = book(
        {
            "http_5xx": {"service": "query", "count": 1},
            "garbage": {},
            "hang": {"service": "any"},
            "result_shapes": {"odd_codes": ["REFUND_CHARGE_ERROR_X"]},
        }
    )
    assert faults.draw("http_5xx", service="refund") is None
    assert faults.draw("http_5xx", service="query") is not None
    garbage = faults.draw("garbage", service="query")
    assert garbage is not None and garbage.option("body") == "any"
    assert faults.draw("garbage", service="refund") is None  # garbage defaults to the query
    assert faults.draw("hang", service="query") is not None
    shapes = faults.draw("result_shapes")
    assert shapes is not None and shapes.option("odd_codes") == ("REFUND_CHARGE_ERROR_X",)
    assert faults.snapshot()["faults"]["result_shapes"]["odd_codes"] == ["REFUND_CHARGE_ERROR_X"]
    assert faults.choice(("a", "b")) in ("a", "b")
    assert 0 <= faults.randbits(32) < 2**32
