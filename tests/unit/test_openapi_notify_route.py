"""The receiver's OpenAPI route with fake collaborators, and the coupon matching rules."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from wsgiref.types import WSGIApplication

import pytest
from structlog.testing import capture_logs

from tests.support.openapi import alipay_keys, app_keys, by_hand_signature
from tests.support.receiver import Fakes, call, post_form
from worker.adapters.wsgi.openapi_notify import make_openapi_handler
from worker.domain.policy.openapi import Channel, coupon_notification_mismatch
from worker.openapi import parse_coupon_notification, verify_notification

PARTNER = "2088000000000001"
OTHER = "2088000000000002"
MAX_BODY = 4096
PATH = "/alipay/openapi-notify"
FORM_TYPE = "application/x-www-form-urlencoded; charset=utf-8"

FIELDS = {
    "notify_type": "fund_stdtrustee_refund.success",
    "notify_id": "91722adff935e8cfa58b3aabf4dead6ibe",
    "notify_time": "2026-11-22 12:00:00",
    "auth_no": "2026112210002001800000000001",
    "out_order_no": "",
    "operation_id": "20261122000000012345",
    "out_request_no": "c_1",
    "operation_type": "REFUND",
    "amount": "3.00",
    "status": "SUCCESS",
    "gmt_trans": "2026-11-22 12:00:01",
}


def signed(fields: Mapping[str, str], private: bytes | None = None) -> dict[str, str]:
    text = "&".join(f"{k}={v}" for k, v in sorted(fields.items()))
    sign = by_hand_signature(text, private or alipay_keys()[0])
    return {**fields, "sign_type": "RSA2", "sign": sign}


@dataclass
class Route:
    """The route's collaborators: PARTNER's app verifies with Alipay's test key."""

    keys: dict[str, bytes] = field(default_factory=lambda: {PARTNER: alipay_keys()[1]})
    stored: list[tuple[dict[str, str], str]] = field(default_factory=list)
    enqueued: list[tuple[dict[str, str], str]] = field(default_factory=list)
    store_error: Exception | None = None

    def candidates(self, name: str | None) -> tuple[str, ...] | None:
        if name is None:
            return tuple(self.keys)
        return (name,) if name in self.keys else None

    def verify(self, form: Mapping[str, str], partner: str) -> bool:
        return verify_notification(form, self.keys[partner])

    def store(self, form: dict[str, str], partner: str) -> None:
        if self.store_error is not None:
            raise self.store_error
        self.stored.append((form, partner))

    def enqueue(self, form: dict[str, str], partner: str) -> None:
        self.enqueued.append((form, partner))

    def app(self) -> WSGIApplication:
        handler = make_openapi_handler(
            max_body_bytes=MAX_BODY,
            candidates=self.candidates,
            verify=self.verify,
            store=self.store,
            enqueue=self.enqueue,
        )
        return Fakes().app(openapi=handler)


def post(app: WSGIApplication, form: Mapping[str, str], **kwargs: Any) -> Any:
    kwargs.setdefault("path", PATH)
    kwargs.setdefault("content_type", FORM_TYPE)
    return post_form(app, form, **kwargs)


def test_a_verified_notification_is_stored_queued_and_answered_success() -> None:
    route = Route()
    form = signed({**FIELDS, "remark": "红包 退款&a=b+c"})
    with capture_logs() as logs:
        reply = post(route.app(), form)
    assert (reply.status, reply.body) == (200, b"success")
    assert route.stored == [(form, PARTNER)] and route.enqueued == [(form, PARTNER)]
    assert [e["event"] for e in logs][-1] == "openapi_notify.enqueued"


def test_the_merchant_route_checks_only_that_merchants_key() -> None:
    route = Route(keys={OTHER: app_keys()[1], PARTNER: alipay_keys()[1]})
    assert post(route.app(), signed(FIELDS), path=f"{PATH}/{PARTNER}").status == 200
    assert route.stored[0][1] == PARTNER
    assert post(route.app(), signed(FIELDS), path=f"{PATH}/{OTHER}").status == 403


def test_every_merchant_is_tried_when_the_route_names_none() -> None:
    route = Route(keys={OTHER: app_keys()[1], PARTNER: alipay_keys()[1]})
    assert post(route.app(), signed(FIELDS)).status == 200
    assert route.stored[0][1] == PARTNER


@pytest.mark.parametrize(
    "form",
    [
        signed(FIELDS, private=app_keys()[0]),  # another key
        {**signed(FIELDS), "amount": "300.00"},  # changed after signing
        {**signed(FIELDS), "sign_type": "RSA"},
        {k: v for k, v in signed(FIELDS).items() if k != "out_order_no"},  # empty value dropped
        {k: v for k, v in signed(FIELDS).items() if k != "sign"},
        {**signed(FIELDS), "sign": ""},
    ],
)
def test_a_bad_or_missing_signature_is_refused_and_nothing_stored(form: dict[str, str]) -> None:
    route = Route()
    with capture_logs() as logs:
        reply = post(route.app(), form)
    assert reply.status == 403 and reply.body != b"success"
    assert route.stored == [] and route.enqueued == []
    (bad,) = [e for e in logs if e["event"] == "openapi_notify.bad_signature"]
    assert bad["notify_id"] == FIELDS["notify_id"]
    sign = form.get("sign")
    if sign:
        assert all(sign not in repr(e) for e in logs)


@pytest.mark.parametrize(
    ("content_type", "status", "reason"),
    [
        ("text/plain", 415, "wrong_content_type"),
        ("application/json", 415, "wrong_content_type"),
        (None, 415, "wrong_content_type"),
        ("application/x-www-form-urlencoded; charset=gbk", 400, "unsupported_charset"),
    ],
)
def test_a_wrong_content_type_or_charset_is_refused(
    content_type: str | None, status: int, reason: str
) -> None:
    route = Route()
    with capture_logs() as logs:
        reply = post(route.app(), signed(FIELDS), content_type=content_type)
    assert (reply.status, reply.body) == (status, b"fail")
    assert route.stored == []
    assert [e["reason"] for e in logs if e["event"] == "openapi_notify.rejected"] == [reason]


def test_a_declared_utf8_charset_in_any_spelling_is_accepted() -> None:
    route = Route()
    reply = post(route.app(), signed(FIELDS), content_type="application/x-www-form-urlencoded")
    assert reply.status == 200
    reply = post(
        route.app(), signed(FIELDS), content_type="application/x-www-form-urlencoded; charset=UTF8"
    )
    assert reply.status == 200


def test_a_body_over_the_limit_is_refused_unread() -> None:
    route = Route()
    form = signed({**FIELDS, "remark": "x" * MAX_BODY})
    reply = post(route.app(), form)
    assert (reply.status, reply.body) == (413, b"fail")
    assert route.stored == []


def test_an_unknown_merchant_route_is_404() -> None:
    route = Route()
    reply = post(route.app(), signed(FIELDS), path=f"{PATH}/nobody")
    assert (reply.status, reply.body) == (404, b"fail")


def test_no_openapi_app_means_no_route() -> None:
    reply = post(Fakes().app(), signed(FIELDS))
    assert reply.status == 404


def test_only_post_is_allowed() -> None:
    reply = call(Route().app(), method="GET", path=PATH)
    assert reply.status == 405 and reply.headers["Allow"] == "POST"


@pytest.mark.parametrize(
    ("change", "status"),
    [({"notify_id": ""}, 400), ({"notify_id": "bad id\x01"}, 400)],
)
def test_a_missing_or_bad_notify_id_is_refused(change: dict[str, str], status: int) -> None:
    route = Route()
    assert post(route.app(), signed({**FIELDS, **change})).status == status
    assert route.stored == []


def test_a_malformed_form_is_refused() -> None:
    route = Route()
    reply = call(route.app(), path=PATH, body=b"a=1&a=2", content_type=FORM_TYPE)
    assert reply.status == 400


def test_a_store_failure_is_not_answered_success_and_not_queued() -> None:
    route = Route(store_error=RuntimeError("database away"))
    reply = post(route.app(), signed(FIELDS))
    assert (reply.status, reply.body) == (503, b"fail")
    assert route.enqueued == []


# -- the matching rules ----------------------------------------------------------------


NOTE = parse_coupon_notification(signed(FIELDS))


def test_a_notification_of_the_same_envelope_and_amount_matches() -> None:
    assert (
        coupon_notification_mismatch(
            NOTE, channel=Channel.COUPON_REFUND, auth_no=FIELDS["auth_no"], amount=Decimal("3")
        )
        is None
    )


@pytest.mark.parametrize(
    ("channel", "auth_no", "amount", "named"),
    [
        (Channel.TRADE_REFUND, None, Decimal("3.00"), "coupon refund"),
        (Channel.COUPON_REFUND, "2026112210002001800000000009", Decimal("3.00"), "auth_no"),
        (Channel.COUPON_REFUND, FIELDS["auth_no"], Decimal("2.99"), "amount"),
    ],
)
def test_a_mismatch_names_what_differs(
    channel: Channel, auth_no: str | None, amount: Decimal, named: str
) -> None:
    problem = coupon_notification_mismatch(NOTE, channel=channel, auth_no=auth_no, amount=amount)
    assert problem is not None and named in problem
