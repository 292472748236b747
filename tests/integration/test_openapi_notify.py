"""The OpenAPI channels end to end against a real sandbox, PostgreSQL and RabbitMQ.

The worker's real client (`OpenApiClient`) calls the sandbox's OpenAPI gateway; the
submitter runs as the scheduler hands refunds over (`due_openapi`); the sandbox posts
its coupon notifications to a real `refund-worker notify-server` process, which
verifies, stores and queues them on RabbitMQ, and the test applies the queued jobs with
the notification job's service. Every refund ends once: one `refund.completed` each,
nothing done twice at the sandbox.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
import requests

from tests.support.db import fresh_database
from tests.support.ledger import auth_no, delivery, outbox_events, request, rows
from tests.support.notify_server import (
    Server,
    delete_queues,
    queued_messages,
    start_server,
)
from tests.support.openapi import app_keys, by_hand_signature
from tests.support.sandbox import APP_ID, PARTNER, RunningSandbox, openapi_app_keys, run_sandbox
from worker.adapters.gateway.openapi import OpenApiClient
from worker.adapters.postgres.pool import Database
from worker.domain.merchants import MerchantProfile, Merchants
from worker.mapi import Merchant, encode_form
from worker.openapi import out_request_no
from worker.services import intake
from worker.services.openapi_notifications import process_openapi_notification
from worker.services.openapi_submission import due_openapi, submit_openapi_refund
from worker.services.sweeper import resume_submission

pytestmark = pytest.mark.integration

OTHER = "2088000000000002"
OPEN = ("pending", "submitted")


def merchants(
    sb: RunningSandbox, *, other_key: bytes | None = None, other_app: str = APP_ID
) -> Merchants:
    """The sandbox's partner with its app; a second merchant on the same app, whose private
    key is `other_key` (a wrong one makes its calls a configuration error), or on the app
    `other_app` (one the gateway does not know: an unsigned setup refusal)."""

    def profile(id_: str, partner: str, private: bytes, app_id: str = APP_ID) -> MerchantProfile:
        return MerchantProfile(
            id=id_,
            gateway=Merchant(partner=partner, charset="utf-8", sign_type="MD5", md5_key=sb.md5_key),
            app_id=app_id,
            app_private_key_pem=private.decode(),
            app_public_key_pem=sb.openapi_public_key.decode(),
        )

    return Merchants(
        [
            profile("shop-a", PARTNER, openapi_app_keys()[0]),
            profile("shop-b", OTHER, other_key or openapi_app_keys()[0], other_app),
        ]
    )


@dataclass
class Stack:
    sb: RunningSandbox
    db: Database
    server: Server
    client: OpenApiClient

    @property
    def notify_url(self) -> str:
        return f"{self.server.url}/alipay/openapi-notify"

    def apply_queued(self, merchants_: Merchants) -> int:
        messages = queued_messages(self.server.exchange)
        for message in messages:
            kind, form, received_at, partner = message["args"]
            assert kind == "openapi"
            process_openapi_notification(
                self.db, merchants_, form, datetime.fromisoformat(received_at), partner
            )
        return len(messages)

    def drive(
        self,
        refund_ids: Sequence[str],
        *,
        merchants_: Merchants | None = None,
        fast_forward: bool = True,
        notify_url: str | None = None,
        until_final: bool = True,
        rounds: int = 4000,
    ) -> dict[str, str]:
        """Run the scheduler's hand-over, the submitter and the notification job until
        every refund is final (or, `until_final` False, until nothing is due)."""
        m = merchants_ or merchants(self.sb)
        for _ in range(rounds):
            self.apply_queued(m)
            if fast_forward:  # the backoff and the notification wait, elapsed
                rows(
                    self.db,
                    "UPDATE refunds SET next_attempt_at = clock_timestamp()"
                    " WHERE channel <> 'batch' AND state IN ('pending', 'submitted')"
                    " AND next_attempt_at > clock_timestamp() RETURNING 1",
                )
            due = due_openapi(self.db, lease_seconds=60.0)
            for refund_id in due:
                submit_openapi_refund(
                    self.db,
                    self.client,
                    m,
                    refund_id,
                    clock=lambda: datetime.now(UTC),
                    notify_url=notify_url or self.notify_url,
                    lease_seconds=60.0,
                    max_in_flight=8,
                )
            states = self.states(refund_ids)
            if until_final and all(s not in OPEN for s in states.values()):
                return states
            if not until_final and not due:
                return states
            time.sleep(0.02)
        raise AssertionError(f"refunds not final: {self.states(refund_ids)}")

    def states(self, refund_ids: Sequence[str]) -> dict[str, str]:
        found = rows(
            self.db,
            "SELECT refund_id, state FROM refunds WHERE refund_id = ANY(%s)",
            list(refund_ids),
        )
        return {str(r[0]): str(r[1]) for r in found}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    keys = tmp_path_factory.mktemp("openapi-keys")
    with run_sandbox(app_id=APP_ID) as sb, fresh_database() as url:
        (keys / "app_private.pem").write_bytes(openapi_app_keys()[0])
        (keys / "alipay_public.pem").write_bytes(sb.openapi_public_key)
        server = start_server(
            keys,
            sb.gateway_url,
            charset="utf-8",
            md5_key=sb.md5_key,
            env={
                "ALIPAY_PARTNER": PARTNER,
                "DATABASE_URL": url,
                "ALIPAY_APP_ID": APP_ID,
                "ALIPAY_APP_PRIVATE_KEY_FILE": str(keys / "app_private.pem"),
                "ALIPAY_APP_PUBLIC_KEY_FILE": str(keys / "alipay_public.pem"),
                "ALIPAY_OPENAPI_GATEWAY_URL": sb.openapi_gateway_url,
            },
        )
        db = Database(url, max_size=4, name="refund-worker-test")
        client = OpenApiClient(sb.openapi_gateway_url, connect_timeout=1.0, read_timeout=5.0)
        try:
            yield Stack(sb, db, server, client)
        finally:
            client.close()
            db.close()
            try:
                assert server.stop() == 0, server.logs()
            finally:
                delete_queues(server.exchange)


@pytest.fixture(autouse=True)
def _clean_sandbox(stack: Stack) -> Iterator[None]:
    queued_messages(stack.server.exchange)
    yield
    stack.sb.client.clear_faults()
    stack.sb.client.update_settings(openapi_coupon_status="SUCCESS")


def _tag() -> str:
    return uuid.uuid4().hex[:10]


def _trade_no() -> str:
    return f"2026112221{uuid.uuid4().int % 10**14:014d}"


def _auth_no() -> str:
    return auth_no(uuid.uuid4().int % 10**11)


def store_refunds(
    stack: Stack, bodies: Sequence[dict[str, Any]], m: Merchants | None = None
) -> None:
    deliveries = [delivery(b) for b in bodies]
    assert intake.handle_deliveries(stack.db, deliveries, m or merchants(stack.sb)) == []


def trade_refund(refund_id: str, amount: str = "5.00", **extra: Any) -> dict[str, Any]:
    return request(refund_id, _trade_no(), amount, channel="trade", **extra)


def coupon_refund(refund_id: str, amount: str = "3.00", **extra: Any) -> dict[str, Any]:
    body = request(refund_id, "x", amount, channel="coupon", auth_no=_auth_no(), **extra)
    del body["trade_no"]
    return body


def events_of(stack: Stack, refund_ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    events: dict[str, list[dict[str, Any]]] = {r: [] for r in refund_ids}
    for event in outbox_events(stack.db):
        if event["refund_id"] in events:
            events[event["refund_id"]].append(event)
    return events


def assert_sandbox_books_clean(stack: Stack) -> None:
    summary = stack.sb.client.summary()["openapi"]
    assert summary["double_executed"] == [] and summary["over_refunded"] == []


def notifications_of(stack: Stack, refund_id: str) -> list[tuple[Any, ...]]:
    return rows(
        stack.db,
        "SELECT outcome, detail FROM openapi_notifications n JOIN refunds r"
        " ON r.out_request_no = n.out_request_no WHERE r.refund_id = %s",
        refund_id,
    )


def wait_applied(stack: Stack, refund_id: str, rounds: int = 600) -> None:
    """Apply queued notification jobs until one for the refund has been applied."""
    for _ in range(rounds):
        stack.apply_queued(merchants(stack.sb))
        if any(n[0] != "pending" for n in notifications_of(stack, refund_id)):
            return
        time.sleep(0.05)
    raise AssertionError(f"no notification applied for {refund_id}: {stack.server.logs()[-2000:]}")


# ---------------------------------------------------------------------------------------


def test_trade_and_coupon_refunds_complete_with_one_event_each(stack: Stack) -> None:
    t, c = f"t-{_tag()}", f"c-{_tag()}"
    store_refunds(stack, [trade_refund(t), coupon_refund(c)])
    assert stack.drive([t, c]) == {t: "succeeded", c: "succeeded"}
    events = events_of(stack, [t, c])
    assert [e["status"] for e in events[t]] == ["succeeded"]
    assert [e["status"] for e in events[c]] == ["succeeded"]
    assert events[t][0]["channel"] == "trade" and events[c][0]["channel"] == "coupon"
    assert events[c][0]["operation_id"]
    # The coupon refund's notification came too, through the notify-server: it found
    # the refund already done and changed nothing.
    wait_applied(stack, c)
    assert [n[0] for n in notifications_of(stack, c)] == ["already_final"]
    assert len(events_of(stack, [c])[c]) == 1
    assert_sandbox_books_clean(stack)


@pytest.mark.parametrize(
    "faults",
    [
        {"reset_after_accept": {"count": 2}},
        {"unknown_error": {"count": 2}},
        {"unknown_error": {"count": 2, "accept": True}},
        {"reset_after_accept": {"rate": 0.5}, "unknown_error": {"rate": 0.3, "accept": True}},
    ],
    ids=["reset", "unknown", "unknown-accepted", "mixed"],
)
def test_with_faults_every_refund_ends_once(stack: Stack, faults: dict[str, Any]) -> None:
    stack.sb.client.set_faults({"openapi": faults, "seed": 7})
    ids = [f"t-{_tag()}" for _ in range(3)] + [f"c-{_tag()}" for _ in range(3)]
    bodies = [trade_refund(r) if r.startswith("t-") else coupon_refund(r) for r in ids]
    store_refunds(stack, bodies)
    states = stack.drive(ids)
    stack.sb.client.clear_faults()
    assert set(states.values()) == {"succeeded"}
    assert all(len(e) == 1 for e in events_of(stack, ids).values())
    assert stack.sb.client.faults()["fired_total"], "the faults fired"
    assert_sandbox_books_clean(stack)
    # Every call is kept as evidence, all with the same out_request_no per refund.
    for refund_id in ids:
        (count,) = rows(
            stack.db, "SELECT count(*) FROM openapi_calls WHERE refund_id = %s", refund_id
        )[0]
        assert count >= 1


def test_a_coupon_refund_answered_init_completes_from_its_notification(stack: Stack) -> None:
    stack.sb.client.update_settings(openapi_coupon_status="INIT")
    c = f"c-{_tag()}"
    store_refunds(stack, [coupon_refund(c)])
    # No fast-forward: the refund waits for its notification, not for the query.
    assert stack.drive([c], fast_forward=False) == {c: "succeeded"}
    (source, next_step) = rows(
        stack.db, "SELECT result_source, next_step FROM refunds WHERE refund_id = %s", c
    )[0]
    assert (source, next_step) == ("notify", "query")
    assert [n[0] for n in notifications_of(stack, c)] == ["applied"]
    (event,) = events_of(stack, [c])[c]
    assert event["operation_id"] and event["status"] == "succeeded"
    assert rows(stack.db, "SELECT count(*) FROM openapi_calls WHERE refund_id = %s", c) == [(1,)]


def test_a_coupon_refund_answered_init_without_its_notification_completes_by_query(
    stack: Stack,
) -> None:
    stack.sb.client.update_settings(openapi_coupon_status="INIT")
    c = f"c-{_tag()}"
    store_refunds(stack, [coupon_refund(c)])
    nowhere = "http://127.0.0.1:9/alipay/openapi-notify"  # the notification never arrives
    assert stack.drive([c], notify_url=nowhere) == {c: "succeeded"}
    calls = rows(
        stack.db, "SELECT kind, action FROM openapi_calls WHERE refund_id = %s ORDER BY attempt", c
    )
    assert calls[0] == ("send", "wait_notify")
    assert calls[-1] == ("query", "complete_succeeded")
    assert len(events_of(stack, [c])[c]) == 1


def _sandbox_signed(stack: Stack, fields: dict[str, str]) -> dict[str, str]:
    private = (stack.sb.state_dir / "openapi_alipay_private_key.pem").read_bytes()
    text = "&".join(f"{k}={v}" for k, v in sorted(fields.items()))
    return {**fields, "sign_type": "RSA2", "sign": by_hand_signature(text, private)}


def _notification(out_request_no_: str, auth: str, amount: str) -> dict[str, str]:
    return {
        "notify_type": "fund_stdtrustee_refund.success",
        "notify_id": f"n{uuid.uuid4().hex}",  # one per notification, the same on resends
        "notify_time": "2026-11-22 12:00:00",
        "auth_no": auth,
        "out_order_no": "",
        "operation_id": "20261122000000099999",
        "out_request_no": out_request_no_,
        "operation_type": "REFUND",
        "amount": amount,
        "status": "SUCCESS",
        "gmt_trans": "2026-11-22 12:00:00",
    }


def _post(stack: Stack, form: dict[str, str]) -> requests.Response:
    return requests.post(
        stack.notify_url,
        data=encode_form(form, "utf-8"),
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
        timeout=10,
    )


def test_bad_signature_unknown_or_mismatched_notifications_change_nothing(stack: Stack) -> None:
    stack.sb.client.update_settings(openapi_coupon_status="INIT")
    c = f"c-{_tag()}"
    body = coupon_refund(c)
    store_refunds(stack, [body])
    nowhere = "http://127.0.0.1:9/alipay/openapi-notify"
    waiting = stack.drive([c], notify_url=nowhere, fast_forward=False, until_final=False)
    assert waiting == {c: "submitted"}  # answered INIT, waiting for its notification
    number = out_request_no(c)
    genuine = _notification(number, body["auth_no"], body["amount"])

    forged = {**genuine, "sign_type": "RSA2", "sign": by_hand_signature("x", app_keys()[0])}
    reply = _post(stack, forged)
    assert reply.status_code == 403 and reply.text != "success"
    assert (
        rows(
            stack.db,
            "SELECT 1 FROM openapi_notifications WHERE notify_id = %s",
            forged["notify_id"],
        )
        == []
    )
    assert "openapi_notify.bad_signature" in stack.server.logs()
    assert forged["sign"] not in stack.server.logs()

    unknown = _sandbox_signed(stack, _notification("nobody_1", body["auth_no"], "3.00"))
    other_amount = _sandbox_signed(stack, {**genuine, "notify_id": f"na{_tag()}", "amount": "2.00"})
    other_envelope = _sandbox_signed(
        stack, {**genuine, "notify_id": f"nb{_tag()}", "auth_no": _auth_no()}
    )
    for form in (unknown, other_amount, other_envelope):
        assert _post(stack, form).text == "success"
    assert stack.apply_queued(merchants(stack.sb)) == 3
    outcomes = dict(
        rows(
            stack.db,
            "SELECT notify_id, outcome FROM openapi_notifications WHERE notify_id = ANY(%s)",
            [unknown["notify_id"], other_amount["notify_id"], other_envelope["notify_id"]],
        )
    )
    assert outcomes == {
        unknown["notify_id"]: "unknown_refund",
        other_amount["notify_id"]: "mismatch",
        other_envelope["notify_id"]: "mismatch",
    }
    assert stack.states([c]) == {c: "submitted"} and events_of(stack, [c])[c] == []

    # The genuine one, sent twice (a resend): applied once, one event.
    good = _sandbox_signed(stack, genuine)
    assert _post(stack, good).text == "success" and _post(stack, good).text == "success"
    stack.apply_queued(merchants(stack.sb))
    assert stack.states([c]) == {c: "succeeded"}
    assert len(events_of(stack, [c])[c]) == 1
    (outcome,) = rows(
        stack.db,
        "SELECT outcome FROM openapi_notifications WHERE notify_id = %s",
        good["notify_id"],
    )[0]
    assert outcome == "applied"


def test_a_configuration_error_halts_only_that_merchants_channel_until_resume(
    stack: Stack,
) -> None:
    wrong = merchants(stack.sb, other_key=app_keys()[0])  # shop-b signs with a wrong key
    a, b = f"t-{_tag()}", f"t-{_tag()}"
    store_refunds(stack, [trade_refund(a), trade_refund(b, merchant="shop-b")], wrong)
    states = stack.drive([a, b], merchants_=wrong, until_final=False)
    assert states == {a: "succeeded", b: "submitted"}
    (halt,) = rows(stack.db, "SELECT value FROM control WHERE name = %s", f"openapi_halted:{OTHER}")
    assert "isv.invalid-signature" in halt[0]
    assert rows(
        stack.db, "SELECT count(*) FROM control WHERE name = %s", f"openapi_halted:{PARTNER}"
    ) == [(0,)]
    # Fixed (the right key) and resumed: the same refund goes on, same out_request_no.
    resume_submission(stack.db, OTHER)
    assert stack.drive([b]) == {b: "succeeded"}
    assert len(events_of(stack, [b])[b]) == 1
    assert_sandbox_books_clean(stack)


def test_an_unknown_app_id_halts_that_merchants_channel_not_retried_forever(
    stack: Stack,
) -> None:
    unknown = merchants(stack.sb, other_app="2021009999999999")
    b = f"t-{_tag()}"
    store_refunds(stack, [trade_refund(b, merchant="shop-b")], unknown)
    assert stack.drive([b], merchants_=unknown, until_final=False) == {b: "submitted"}
    (halt,) = rows(stack.db, "SELECT value FROM control WHERE name = %s", f"openapi_halted:{OTHER}")
    assert "isv.invalid-app-id" in halt[0]
    assert rows(stack.db, "SELECT count(*) FROM openapi_calls WHERE refund_id = %s", b) == [(1,)]
    resume_submission(stack.db, OTHER)
    assert stack.drive([b]) == {b: "succeeded"}  # the right app now: same out_request_no
    assert len(events_of(stack, [b])[b]) == 1
    assert_sandbox_books_clean(stack)


def test_status_shows_an_openapi_refunds_calls_and_notifications(stack: Stack) -> None:
    from worker.entrypoints.roles.ops import collect

    c = f"c-{_tag()}"
    store_refunds(stack, [coupon_refund(c)])
    stack.drive([c])
    wait_applied(stack, c)
    shown = json.loads(json.dumps(collect(stack.db, "refund", c), default=str))
    assert shown["refund"]["channel"] == "coupon" and shown["refund"]["state"] == "succeeded"
    assert [call["kind"] for call in shown["openapi_calls"]] == ["send"]
    assert [n["outcome"] for n in shown["openapi_notifications"]] == ["already_final"]


def test_a_notification_stored_but_never_queued_is_applied_by_the_sweep(stack: Stack) -> None:
    from worker.services.openapi_notifications import (
        receive_openapi_notification,
        sweep_unapplied_openapi,
    )

    stack.sb.client.update_settings(openapi_coupon_status="INIT")
    c = f"c-{_tag()}"
    body = coupon_refund(c)
    store_refunds(stack, [body])
    nowhere = "http://127.0.0.1:9/alipay/openapi-notify"
    stack.drive([c], notify_url=nowhere, fast_forward=False, until_final=False)
    form = _sandbox_signed(stack, _notification(out_request_no(c), body["auth_no"], "3.00"))
    # The receiver stored it, then the broker went away: no job was queued.
    assert receive_openapi_notification(stack.db, form, PARTNER, datetime.now(UTC))
    assert not receive_openapi_notification(stack.db, form, PARTNER, datetime.now(UTC))
    assert stack.states([c]) == {c: "submitted"}
    # (Notifications of earlier tests whose jobs were dropped are swept up too.)
    assert form["notify_id"] in sweep_unapplied_openapi(
        stack.db, merchants(stack.sb), older_than=0.0
    )
    assert stack.states([c]) == {c: "succeeded"}
    assert sweep_unapplied_openapi(stack.db, merchants(stack.sb), older_than=0.0) == []
    assert len(events_of(stack, [c])[c]) == 1
