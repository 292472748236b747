"""The OpenAPI submitter against a real PostgreSQL, with a fake gateway (its port):
every kind of answer carried out, one out_request_no per refund, one event per refund."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.support.ledger import (
    PARTNER,
    auth_no,
    delivery,
    openapi_merchants,
    outbox_events,
    request,
    rows,
    trade,
)
from tests.support.openapi import alipay_keys, signed_answer
from worker.adapters.postgres import openapi as store
from worker.adapters.postgres.pool import Database
from worker.domain.policy.openapi import SendOutcome
from worker.openapi import classify, out_request_no, read_answer
from worker.services import intake
from worker.services.openapi_submission import submit_openapi_refund
from worker.services.ports import OpenApiReply

pytestmark = pytest.mark.integration

Answer = Callable[[Mapping[str, str]], OpenApiReply]


class FakeGateway:
    """The OpenAPI gateway port: answers from a script, remembers every request."""

    def __init__(self, *answers: Answer) -> None:
        self.answers = list(answers)
        self.calls: list[dict[str, Any]] = []

    def call(
        self, params: Mapping[str, str], *, public_key_pem: str | bytes, partner: str
    ) -> OpenApiReply:
        biz = json.loads(params["biz_content"])
        self.calls.append({"method": params["method"], **biz})
        return self.answers.pop(0)(params)


def answered(member: dict[str, str]) -> Answer:
    def answer(params: Mapping[str, str]) -> OpenApiReply:
        raw = signed_answer(
            params["method"], json.dumps(member, separators=(",", ":")), alipay_keys()[0]
        )
        parsed = read_answer(raw, params["method"], alipay_keys()[1])
        return OpenApiReply(SendOutcome.ANSWERED, raw=raw, classification=classify(parsed))

    return answer


def lost(params: Mapping[str, str]) -> OpenApiReply:
    return OpenApiReply(SendOutcome.UNKNOWN, reason="connection_lost")


def refused_connection(params: Mapping[str, str]) -> OpenApiReply:
    return OpenApiReply(SendOutcome.NOT_SENT, reason="connect_failed")


def clock() -> datetime:
    return datetime(2026, 11, 22, 4, 0, tzinfo=UTC)


def _store(db: Database, *bodies: dict[str, Any]) -> None:
    assert intake.handle_deliveries(db, [delivery(b) for b in bodies], openapi_merchants()) == []


def _trade_refund(refund_id: str = "t-1", amount: str = "5.00") -> dict[str, Any]:
    return request(refund_id, trade(1), amount, channel="trade")


def _coupon_refund(refund_id: str = "c-1", amount: str = "3.00") -> dict[str, Any]:
    body = request(refund_id, "x", amount, channel="coupon", auth_no=auth_no(1))
    del body["trade_no"]
    return body


def _run(db: Database, gateway: FakeGateway, refund_id: str, max_in_flight: int = 8) -> str:
    return submit_openapi_refund(
        db,
        gateway,
        openapi_merchants(),
        refund_id,
        clock=clock,
        notify_url="http://127.0.0.1:8080/alipay/openapi-notify",
        lease_seconds=60.0,
        max_in_flight=max_in_flight,
    ).what


def _make_due(db: Database, refund_id: str) -> None:
    rows(
        db,
        "UPDATE refunds SET next_attempt_at = clock_timestamp() WHERE refund_id = %s RETURNING 1",
        refund_id,
    )


def _state(db: Database, refund_id: str) -> tuple[Any, ...]:
    return rows(
        db,
        "SELECT state, code, next_step, maybe_sent, openapi_attempts, claimed_at IS NULL"
        " FROM refunds WHERE refund_id = %s",
        refund_id,
    )[0]


TRADE_OK = {
    "code": "10000",
    "msg": "Success",
    "fund_change": "Y",
    "trade_no": trade(1),
    "gmt_refund_pay": "2026-11-22 12:00:01",
    "refund_fee": "5.00",
}


def test_a_trade_refund_answered_y_completes_with_one_event(db: Database) -> None:
    _store(db, _trade_refund())
    gateway = FakeGateway(answered(TRADE_OK))
    assert _run(db, gateway, "t-1") == "complete_succeeded"
    assert gateway.calls == [
        {
            "method": "alipay.trade.refund",
            "trade_no": trade(1),
            "refund_amount": "5.00",
            "out_request_no": out_request_no("t-1"),
        }
    ]
    assert _state(db, "t-1")[:2] == ("succeeded", "SUCCESS")
    (event,) = outbox_events(db)
    assert event["channel"] == "trade" and event["gmt_refund_pay"] == "2026-11-22 12:00:01"
    assert event["out_request_no"] == out_request_no("t-1") and event["merchant"] == PARTNER
    assert _run(db, gateway, "t-1") == "skipped"  # a repeated job changes nothing
    assert len(outbox_events(db)) == 1
    (call,) = rows(
        db, "SELECT kind, outcome, verdict, action, answer IS NOT NULL FROM openapi_calls"
    )
    assert call == ("send", "answered", "succeeded", "complete_succeeded", True)


def test_an_unknown_outcome_retries_the_same_request_then_a_20000_then_success(
    db: Database,
) -> None:
    _store(db, _trade_refund())
    gateway = FakeGateway(
        lost,
        answered(
            {
                "code": "20000",
                "msg": "Service Currently Unavailable",
                "sub_code": "isp.unknow-error",
            }
        ),
        answered(TRADE_OK),
    )
    assert _run(db, gateway, "t-1") == "retry_same"
    assert _state(db, "t-1")[:5] == ("submitted", None, "send", True, 1)
    assert _run(db, gateway, "t-1") == "skipped"  # not due yet: the backoff holds
    _make_due(db, "t-1")
    assert _run(db, gateway, "t-1") == "retry_same"
    _make_due(db, "t-1")
    assert _run(db, gateway, "t-1") == "complete_succeeded"
    assert {c["out_request_no"] for c in gateway.calls} == {out_request_no("t-1")}
    assert {c["refund_amount"] for c in gateway.calls} == {"5.00"}
    assert len(outbox_events(db)) == 1


def test_a_refusal_on_a_first_attempt_fails_the_refund(db: Database) -> None:
    _store(db, _trade_refund())
    gateway = FakeGateway(
        answered({"code": "40004", "msg": "Business Failed", "sub_code": "ACQ.TRADE_NOT_EXIST"})
    )
    assert _run(db, gateway, "t-1") == "complete_failed"
    (event,) = outbox_events(db)
    assert (event["status"], event["code"]) == ("failed", "ACQ.TRADE_NOT_EXIST")


def test_a_refusal_after_an_unknown_outcome_is_confirmed_by_a_query(db: Database) -> None:
    _store(db, _trade_refund())
    refused = answered(
        {"code": "40004", "msg": "Business Failed", "sub_code": "ACQ.TRADE_NOT_EXIST"}
    )
    gateway = FakeGateway(lost, refused, answered({"code": "10000", "msg": "Success"}))
    assert _run(db, gateway, "t-1") == "retry_same"
    _make_due(db, "t-1")
    assert _run(db, gateway, "t-1") == "query_first"
    _make_due(db, "t-1")
    assert _run(db, gateway, "t-1") == "complete_failed"
    assert [c["method"] for c in gateway.calls][-1] == "alipay.trade.fastpay.refund.query"
    assert outbox_events(db)[0]["code"] == "ACQ.TRADE_NOT_EXIST"


def test_fund_change_n_queries_and_a_found_refund_completes(db: Database) -> None:
    _store(db, _trade_refund())
    gateway = FakeGateway(
        answered({**TRADE_OK, "fund_change": "N"}),
        answered(
            {
                "code": "10000",
                "msg": "Success",
                "refund_status": "REFUND_SUCCESS",
                "out_request_no": out_request_no("t-1"),
                "refund_amount": "5.00",
            }
        ),
    )
    assert _run(db, gateway, "t-1") == "query_first"
    _make_due(db, "t-1")
    assert _run(db, gateway, "t-1") == "complete_succeeded"
    assert _state(db, "t-1")[0] == "succeeded"


def test_a_connection_refused_leaves_the_refund_not_maybe_sent(db: Database) -> None:
    _store(db, _trade_refund())
    assert _run(db, FakeGateway(refused_connection), "t-1") == "retry_same"
    assert _state(db, "t-1")[2:4] == ("send", False)


def test_a_crash_between_claim_and_settle_is_maybe_sent_and_retried_the_same(
    db: Database,
) -> None:
    _store(db, _trade_refund())

    def crash(params: Mapping[str, str]) -> OpenApiReply:
        raise SystemExit("worker killed mid-request")

    gateway = FakeGateway(
        crash,
        answered({"code": "40004", "msg": "Business Failed", "sub_code": "ACQ.TRADE_NOT_EXIST"}),
        answered({"code": "10000", "msg": "Success"}),
    )
    with pytest.raises(SystemExit):
        _run(db, gateway, "t-1")
    assert _state(db, "t-1")[:6] == ("submitted", None, "send", True, 1, False)
    assert _run(db, gateway, "t-1") == "skipped"  # the claim is still within its lease
    rows(db, "UPDATE refunds SET claimed_at = claimed_at - interval '1 hour' RETURNING 1")
    # Maybe sent before: the refusal alone proves nothing, a query must confirm it.
    assert _run(db, gateway, "t-1") == "query_first"
    assert gateway.calls[0]["out_request_no"] == gateway.calls[1]["out_request_no"]


def test_a_coupon_refund_in_progress_waits_for_its_notification(db: Database) -> None:
    _store(db, _coupon_refund())
    gateway = FakeGateway(
        answered(
            {
                "code": "10000",
                "msg": "Success",
                "status": "INIT",
                "auth_no": auth_no(1),
                "amount": "3.00",
            }
        )
    )
    assert _run(db, gateway, "c-1") == "wait_notify"
    assert gateway.calls[0]["method"] == "alipay.fund.coupon.order.refund"
    assert gateway.calls[0]["auth_no"] == auth_no(1) and gateway.calls[0]["amount"] == "3.00"
    (due,) = rows(
        db, "SELECT next_attempt_at - clock_timestamp() > interval '500 seconds' FROM refunds"
    )
    assert due == (True,)
    assert _state(db, "c-1")[2] == "query"


def test_a_coupon_refund_success_carries_the_operation_id(db: Database) -> None:
    _store(db, _coupon_refund())
    gateway = FakeGateway(
        answered(
            {
                "code": "10000",
                "msg": "Success",
                "status": "SUCCESS",
                "operation_id": "20261122000000012345",
                "amount": "3.00",
                "gmt_trans": "2026-11-22 12:00:02",
            }
        )
    )
    assert _run(db, gateway, "c-1") == "complete_succeeded"
    (event,) = outbox_events(db)
    assert event["channel"] == "coupon" and event["operation_id"] == "20261122000000012345"
    assert event["auth_no"] == auth_no(1) and "trade_no" not in event


def test_a_configuration_error_halts_only_that_apps_channel(db: Database) -> None:
    _store(db, _trade_refund("t-1"), _trade_refund("t-2"))
    gateway = FakeGateway(
        answered({"code": "40002", "msg": "Invalid Arguments", "sub_code": "isv.invalid-app-id"})
    )
    assert _run(db, gateway, "t-1") == "halt_channel"
    with db.transaction() as conn:
        assert store.openapi_halt(conn, PARTNER) is not None
        assert store.due_openapi_refunds(conn, lease_seconds=60, redrive_after=60) == []
    assert _run(db, gateway, "t-2") == "skipped"
    assert rows(db, "SELECT count(*) FROM refunds WHERE state IN ('pending', 'submitted')") == [
        (2,)
    ]
    # The batch channel of the same merchant is not halted.
    assert rows(db, "SELECT count(*) FROM control WHERE name LIKE 'submission_halted:%%'") == [(0,)]
    with db.transaction() as conn:
        assert store.clear_openapi_halt(conn, PARTNER) == [PARTNER]
        assert store.due_openapi_refunds(conn, lease_seconds=60, redrive_after=60) == ["t-1", "t-2"]


def test_the_in_flight_limit_of_an_app_holds_further_calls(db: Database) -> None:
    _store(db, _trade_refund("t-1"), _trade_refund("t-2"))
    rows(
        db, "UPDATE refunds SET claimed_at = clock_timestamp() WHERE refund_id = 't-1' RETURNING 1"
    )
    assert _run(db, FakeGateway(), "t-2", max_in_flight=1) == "skipped"
    assert _state(db, "t-2")[4] == 0  # nothing was counted, nothing was sent


def test_the_sweep_hands_over_due_refunds_once_until_the_redrive(db: Database) -> None:
    _store(db, _trade_refund("t-1"), _coupon_refund("c-1"))
    with db.transaction() as conn:
        assert store.due_openapi_refunds(conn, lease_seconds=60, redrive_after=60) == ["c-1", "t-1"]
        assert store.due_openapi_refunds(conn, lease_seconds=60, redrive_after=60) == []
    rows(db, "UPDATE refunds SET enqueued_at = enqueued_at - interval '2 minutes' RETURNING 1")
    with db.transaction() as conn:
        assert store.due_openapi_refunds(conn, lease_seconds=60, redrive_after=60) == ["c-1", "t-1"]


def test_resume_clears_the_openapi_halt_and_the_refunds_are_due_again(db: Database) -> None:
    from worker.services.sweeper import resume_submission

    _store(db, _trade_refund("t-1"))
    with db.transaction() as conn:
        store.set_openapi_halt(conn, PARTNER, "40002: invalid app id")
    resume_submission(db, PARTNER)
    with db.transaction() as conn:
        assert store.openapi_halt(conn, PARTNER) is None
        assert store.due_openapi_refunds(conn, lease_seconds=60, redrive_after=60) == ["t-1"]
