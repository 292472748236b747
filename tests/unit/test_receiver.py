"""The notify receiver as a plain WSGI callable, with fake collaborators."""

from __future__ import annotations

import io

import pytest
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from tests.support.receiver import (
    MAX_BODY,
    PARTNER,
    CountingStream,
    FailingStream,
    Fakes,
    call,
    post_form,
)
from worker.adapters.wsgi.receiver import declared_charset, make_app, normalize_charset
from worker.config.settings import Secret, Settings
from worker.domain.errors import BusUnavailable, GatewayError
from worker.entrypoints.roles.notify_server import ReadinessProbe, endpoint, signature_checker
from worker.mapi import encode_form, sign, verify

MD5_KEY = "unit-test-md5-key-0123456789abcdef"
SIGN_VALUE = "0123456789abcdef0123456789abcdef"


def batch_form(**overrides: str) -> dict[str, str]:
    form = {
        "notify_time": "2024-05-01 10:00:00",
        "notify_type": "batch_refund_notify",
        "notify_id": "70fec0c2730b27528665af4517c27b95",
        "sign_type": "MD5",
        "sign": SIGN_VALUE,
        "batch_no": "20240501001",
        "success_num": "1",
        "result_details": "2024050121001004270231872174^0.01^SUCCESS",
    }
    form.update(overrides)
    return form


def counter(kind: str, outcome: str) -> float:
    value = REGISTRY.get_sample_value(
        "alipay_notify_requests_total", {"kind": kind, "outcome": outcome}
    )
    return value or 0.0


# ---------------------------------------------------------------------------
# The happy path


def test_verified_notification_is_enqueued_then_answered_with_exactly_success() -> None:
    fakes = Fakes()
    form = batch_form()
    before = counter("batch_refund", "enqueued")

    reply = post_form(fakes.app(), form)

    assert reply.status == 200
    assert reply.body == b"success"
    assert len(reply.body) == 7
    assert reply.headers["Content-Type"] == "text/plain"
    assert fakes.calls == ["signature", "notify_verify", "enqueue"]
    assert fakes.verified_ids == [form["notify_id"]]
    assert fakes.enqueued == [("batch_refund", form)]
    assert counter("batch_refund", "enqueued") == before + 1


def test_gbk_body_with_real_md5_signature_verifies_over_values_as_received() -> None:
    form = batch_form(result_details="2024050121001004270231872174^0.01^SUCCESS")
    form["extra_memo"] = "协商退款 + 部分"  # non-ASCII, a literal '+' and spaces
    form["sign"] = sign(form, sign_type="MD5", charset="gbk", md5_key=MD5_KEY)
    body = encode_form(form, "gbk")
    assert "协商".encode("gbk") not in body  # percent-escaped GBK bytes, not UTF-8
    fakes = Fakes()
    app = fakes.app(
        charset="utf-8",
        verify_signature=lambda f, charset, _p: verify(f, charset=charset, md5_key=MD5_KEY),
    )

    reply = call(app, body=body, content_type="application/x-www-form-urlencoded; charset=GBK")

    assert (reply.status, reply.body) == (200, b"success")
    assert fakes.enqueued == [("batch_refund", form)]
    assert fakes.enqueued[0][1]["extra_memo"] == "协商退款 + 部分"


def test_configured_gbk_charset_applies_when_content_type_declares_none() -> None:
    form = batch_form(extra_memo="退款")
    fakes = Fakes()

    reply = call(fakes.app(charset="gbk"), body=encode_form(form, "gbk"), content_type=None)

    assert reply.status == 200
    assert fakes.enqueued[0][1]["extra_memo"] == "退款"


def test_plus_is_a_space_and_the_raw_form_reaches_the_signature_check() -> None:
    body = encode_form(batch_form(), "utf-8") + b"&memo=a+b%2Bc"
    fakes = Fakes()

    reply = call(fakes.app(), body=body)

    assert reply.status == 200
    assert fakes.signed_forms[0]["memo"] == "a b+c"


def test_alipays_odd_content_type_is_read_for_its_charset() -> None:
    form = batch_form(extra_memo="退款")
    fakes = Fakes()

    reply = call(
        fakes.app(charset="gbk"),
        body=encode_form(form, "utf-8"),
        content_type="application/x-www-form-urlencoded; text/html; charset=utf-8",
    )

    assert reply.status == 200
    assert fakes.enqueued[0][1]["extra_memo"] == "退款"


# ---------------------------------------------------------------------------
# Bounded body


def test_oversize_body_is_refused_before_reading() -> None:
    fakes = Fakes()
    stream = CountingStream(b"x" * (MAX_BODY + 1))

    reply = call(fakes.app(), stream=stream, content_length=str(MAX_BODY + 1))

    assert (reply.status, reply.body) == (413, b"fail")
    assert stream.requested == 0
    assert fakes.calls == []


def test_missing_content_length_is_refused() -> None:
    fakes = Fakes()

    reply = call(fakes.app(), body=encode_form(batch_form(), "utf-8"), content_length="")

    assert (reply.status, reply.body) == (411, b"fail")
    assert fakes.calls == []


@pytest.mark.parametrize("length", ["abc", "-5", "1e3", "١٢"])
def test_unreadable_content_length_is_refused(length: str) -> None:
    fakes = Fakes()

    reply = call(fakes.app(), body=b"a=b", content_length=length)

    assert (reply.status, reply.body) == (400, b"fail")
    assert fakes.calls == []


def test_body_shorter_than_announced_is_refused_not_waited_for() -> None:
    fakes = Fakes()
    body = encode_form(batch_form(), "utf-8")

    reply = call(fakes.app(), body=body, content_length=str(len(body) + 100))

    assert (reply.status, reply.body) == (400, b"fail")
    assert fakes.calls == []


def test_reads_no_more_than_content_length() -> None:
    fakes = Fakes()
    body = encode_form(batch_form(), "utf-8")
    stream = CountingStream(body + b"&trailing=garbage-after-the-announced-length")

    reply = call(fakes.app(), stream=stream, body=body)

    assert reply.status == 200
    assert stream.requested == len(body)
    assert "trailing" not in fakes.enqueued[0][1]


def test_socket_error_while_reading_body_answers_fail() -> None:
    fakes = Fakes()

    reply = call(fakes.app(), stream=FailingStream(), content_length="100")

    assert (reply.status, reply.body) == (400, b"fail")
    assert fakes.calls == []


# ---------------------------------------------------------------------------
# Malformed notifications


@pytest.mark.parametrize(
    "field_name",
    ["notify_id", "notify_type", "sign_type", "sign", "batch_no", "success_num", "result_details"],
)
def test_missing_required_field_is_400(field_name: str) -> None:
    fakes = Fakes()
    form = batch_form()
    del form[field_name]

    reply = post_form(fakes.app(), form)

    assert (reply.status, reply.body) == (400, b"fail")
    assert fakes.calls == []


def test_empty_required_field_is_400() -> None:
    fakes = Fakes()

    reply = post_form(fakes.app(), batch_form(notify_id=""))

    assert reply.status == 400
    assert fakes.calls == []


@pytest.mark.parametrize("notify_id", ["has spaces in it", "x" * 129, "非ascii"])
def test_notify_id_the_gateway_never_issues_is_400(notify_id: str) -> None:
    fakes = Fakes()

    reply = post_form(fakes.app(), batch_form(notify_id=notify_id))

    assert (reply.status, reply.body) == (400, b"fail")
    assert fakes.calls == []


def test_wrong_notify_type_is_400() -> None:
    fakes = Fakes()

    reply = post_form(fakes.app(), batch_form(notify_type="trade_status_sync"))

    assert (reply.status, reply.body) == (400, b"fail")
    assert fakes.calls == []


def test_bytes_invalid_in_the_charset_are_400() -> None:
    fakes = Fakes()
    body = encode_form(batch_form(), "utf-8") + b"&memo=%FF%FE"

    reply = call(fakes.app(), body=body)

    assert (reply.status, reply.body) == (400, b"fail")
    assert fakes.calls == []


def test_repeated_parameter_is_400() -> None:
    fakes = Fakes()
    body = encode_form(batch_form(), "utf-8") + b"&batch_no=20240501999"

    reply = call(fakes.app(), body=body)

    assert reply.status == 400
    assert fakes.calls == []


def test_unsupported_declared_charset_is_400() -> None:
    fakes = Fakes()

    reply = post_form(
        fakes.app(), batch_form(), content_type="application/x-www-form-urlencoded; charset=koi8-r"
    )

    assert (reply.status, reply.body) == (400, b"fail")
    assert fakes.calls == []


# ---------------------------------------------------------------------------
# Authentication


def test_bad_signature_is_403_and_never_asks_the_gateway() -> None:
    fakes = Fakes(signature_ok=False)

    reply = post_form(fakes.app(), batch_form())

    assert (reply.status, reply.body) == (403, b"fail")
    assert fakes.calls == ["signature"]


def test_real_md5_check_rejects_a_tampered_value() -> None:
    form = batch_form()
    form["sign"] = sign(form, sign_type="MD5", charset="utf-8", md5_key=MD5_KEY)
    form["result_details"] = form["result_details"].replace("0.01", "9.99")
    fakes = Fakes()
    app = fakes.app(
        verify_signature=lambda f, charset, _p: verify(f, charset=charset, md5_key=MD5_KEY)
    )

    reply = post_form(app, form)

    assert reply.status == 403
    assert fakes.enqueued == []


@pytest.mark.parametrize("answer", ["false", "invalid"])
def test_notify_verify_refuting_is_403(answer: str) -> None:
    fakes = Fakes(verify_answer=answer)

    reply = post_form(fakes.app(), batch_form())

    assert (reply.status, reply.body) == (403, b"fail")
    assert fakes.calls == ["signature", "notify_verify"]


def test_notify_verify_unknown_is_503() -> None:
    fakes = Fakes(verify_answer="unknown")

    reply = post_form(fakes.app(), batch_form())

    assert (reply.status, reply.body) == (503, b"fail")
    assert fakes.enqueued == []


def test_notify_verify_unreachable_is_503() -> None:
    fakes = Fakes(verify_error=GatewayError("connect_failed"))

    reply = post_form(fakes.app(), batch_form())

    assert (reply.status, reply.body) == (503, b"fail")
    assert fakes.enqueued == []


def test_signature_check_raising_is_503() -> None:
    fakes = Fakes(signature_error=RuntimeError("key store down"))

    reply = post_form(fakes.app(), batch_form())

    assert (reply.status, reply.body) == (503, b"fail")
    assert fakes.calls == ["signature"]


def test_enqueue_failing_is_503_fail_never_success() -> None:
    fakes = Fakes(enqueue_error=BusUnavailable("could not enqueue process_notify"))
    before = counter("batch_refund", "enqueue_failed")

    reply = post_form(fakes.app(), batch_form())

    assert (reply.status, reply.body) == (503, b"fail")
    assert fakes.calls == ["signature", "notify_verify", "enqueue"]
    assert counter("batch_refund", "enqueue_failed") == before + 1


def test_collaborator_bugs_still_answer_fail() -> None:
    fakes = Fakes()

    def broken_verify(notify_id: str) -> str:
        raise AssertionError("bug")

    def broken_enqueue(kind: str, form: dict[str, str]) -> None:
        raise KeyError("x")

    assert post_form(fakes.app(notify_verify=broken_verify), batch_form()).body == b"fail"
    assert post_form(fakes.app(enqueue=broken_enqueue), batch_form()).body == b"fail"


class TextStream(io.StringIO):
    """A broken server handing the application text instead of bytes."""


def test_unexpected_error_is_500_fail() -> None:
    fakes = Fakes()
    before = counter("batch_refund", "internal_error")

    reply = call(fakes.app(), stream=TextStream("a=b"), content_length="3")

    assert (reply.status, reply.body) == (500, b"fail")
    assert fakes.calls == []
    assert counter("batch_refund", "internal_error") == before + 1


def test_get_on_notify_path_is_405() -> None:
    fakes = Fakes()

    reply = call(fakes.app(), method="GET", content_length="0")

    assert (reply.status, reply.body) == (405, b"fail")
    assert reply.headers["Allow"] == "POST"
    assert fakes.calls == []


# ---------------------------------------------------------------------------
# Bank-card return notifications


def dback_form(**overrides: str) -> dict[str, str]:
    form = {
        "notify_id": "dback-0001",
        "notify_time": "2024-05-01 10:00:00",
        "sign_type": "MD5",
        "sign": SIGN_VALUE,
        "trade_no": "2024050121001004270231872174",
        "refund_batch_no": "20240501001",
        "card_no": "6222********1234",
        "bank_name": "工商银行",
        "status": "S",
    }
    form.update(overrides)
    return form


def test_dback_notification_is_verified_and_stored_verbatim() -> None:
    fakes = Fakes()
    form = dback_form()

    reply = post_form(fakes.app(), form, path="/alipay/dback-notify")

    assert (reply.status, reply.body) == (200, b"success")
    assert fakes.calls == ["signature", "notify_verify", "enqueue"]
    assert fakes.enqueued == [("dback", form)]


def test_dback_without_notify_id_is_stored_after_the_signature_check() -> None:
    fakes = Fakes()
    form = dback_form()
    del form["notify_id"]

    reply = post_form(fakes.app(), form, path="/alipay/dback-notify")

    assert reply.status == 200
    assert fakes.calls == ["signature", "enqueue"]


def test_unsigned_dback_is_refused() -> None:
    fakes = Fakes()
    form = dback_form()
    del form["sign"]

    reply = post_form(fakes.app(), form, path="/alipay/dback-notify")

    assert (reply.status, reply.body) == (400, b"fail")
    assert fakes.calls == []


def test_dback_with_bad_signature_is_403() -> None:
    fakes = Fakes(signature_ok=False)

    reply = post_form(fakes.app(), dback_form(), path="/alipay/dback-notify")

    assert reply.status == 403
    assert fakes.enqueued == []


def test_dback_refuted_by_notify_verify_is_403() -> None:
    fakes = Fakes(verify_answer="false")

    reply = post_form(fakes.app(), dback_form(), path="/alipay/dback-notify")

    assert reply.status == 403
    assert fakes.enqueued == []


# ---------------------------------------------------------------------------
# Logs


def test_rejection_logs_one_line_with_reason_and_ids_but_no_sign_or_payload() -> None:
    fakes = Fakes(signature_ok=False)
    form = batch_form()

    with capture_logs() as logs:
        post_form(fakes.app(), form)

    rejected = [entry for entry in logs if entry["event"] == "notify.rejected"]
    assert len(rejected) == 1
    assert rejected[0]["reason"] == "bad_signature"
    assert rejected[0]["notify_id"] == form["notify_id"]
    assert rejected[0]["batch_no"] == form["batch_no"]
    text = repr(logs)
    assert SIGN_VALUE not in text
    assert form["result_details"] not in text


def test_success_logs_received_and_enqueued() -> None:
    fakes = Fakes()

    with capture_logs() as logs:
        post_form(fakes.app(), batch_form())

    events = [entry["event"] for entry in logs]
    assert events == ["notify.received", "notify.enqueued"]
    assert SIGN_VALUE not in repr(logs)


def test_enqueue_failure_is_logged_as_error() -> None:
    fakes = Fakes(enqueue_error=BusUnavailable("broker closed the connection"))

    with capture_logs() as logs:
        post_form(fakes.app(), batch_form())

    rejected = [entry for entry in logs if entry["event"] == "notify.rejected"]
    assert rejected[0]["log_level"] == "error"
    assert rejected[0]["reason"] == "enqueue_failed"
    assert "BusUnavailable" in rejected[0]["error"]


def test_overlong_untrusted_ids_are_truncated_in_logs() -> None:
    fakes = Fakes()

    with capture_logs() as logs:
        post_form(fakes.app(), batch_form(notify_id="n" * 1000, batch_no="b" * 1000))

    rejected = [entry for entry in logs if entry["event"] == "notify.rejected"]
    assert len(rejected[0]["notify_id"]) == 64
    assert len(rejected[0]["batch_no"]) == 64


# ---------------------------------------------------------------------------
# Health, readiness, metrics, routing


def test_healthz_answers_ok() -> None:
    reply = call(Fakes(ready_answer=False).app(), method="GET", path="/healthz")

    assert (reply.status, reply.body) == (200, b"ok")


@pytest.mark.parametrize(
    ("fakes", "status"),
    [
        (Fakes(ready_answer=True), 200),
        (Fakes(ready_answer=False), 503),
        (Fakes(ready_error=OSError("down")), 503),
    ],
)
def test_readyz_follows_ready(fakes: Fakes, status: int) -> None:
    reply = call(fakes.app(), method="GET", path="/readyz")

    assert reply.status == status


def test_metrics_expose_notification_counter() -> None:
    fakes = Fakes()
    post_form(fakes.app(), batch_form())

    reply = call(fakes.app(), method="GET", path="/metrics")

    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("text/plain")
    assert b'alipay_notify_requests_total{kind="batch_refund",outcome="enqueued"}' in reply.body


def test_unknown_path_is_404_and_wrong_method_on_probe_is_405() -> None:
    app = Fakes().app()

    assert call(app, method="GET", path="/alipay/other").status == 404
    assert call(app, method="POST", path="/healthz").status == 405


def test_make_app_refuses_an_unsupported_charset_or_size() -> None:
    fakes = Fakes()
    with pytest.raises(ValueError):
        fakes.app(charset="latin-1")
    with pytest.raises(ValueError):
        make_app(
            charset="utf-8",
            max_body_bytes=0,
            candidates=fakes.candidates,
            verify_signature=fakes.verify_signature,
            notify_verify=fakes.notify_verify,
            enqueue=fakes.enqueue,
            ready=fakes.ready,
        )


# ---------------------------------------------------------------------------
# Helpers


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("application/x-www-form-urlencoded", None),
        ("application/x-www-form-urlencoded; charset=GBK", "GBK"),
        ("application/x-www-form-urlencoded; text/html; charset=utf-8", "utf-8"),
        ('application/x-www-form-urlencoded; charset="utf-8"', "utf-8"),
        ("application/x-www-form-urlencoded;CHARSET=gbk", "gbk"),
    ],
)
def test_declared_charset(header: str, expected: str | None) -> None:
    assert declared_charset(header) == expected


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ("UTF-8", "utf-8"),
        ("utf8", "utf-8"),
        ("GBK", "gbk"),
        ("gb2312", "gbk"),
        ("cp936", "gbk"),
        ("latin-1", None),
        ("no-such-charset", None),
    ],
)
def test_normalize_charset(label: str, expected: str | None) -> None:
    assert normalize_charset(label) == expected


# ---------------------------------------------------------------------------
# The notify server's real signature check and readiness probe


def test_signature_checker_accepts_only_the_configured_sign_type() -> None:
    settings = Settings(sign_type="RSA", md5_key=Secret(MD5_KEY), alipay_public_key_pem=None)
    form = batch_form()
    form["sign"] = sign(form, sign_type="MD5", charset="utf-8", md5_key=MD5_KEY)

    # Correctly MD5-signed, but the merchant signs with RSA: no downgrade.
    assert signature_checker(settings.merchants())(form, "utf-8", PARTNER) is False
    md5_merchants = Settings(sign_type="MD5", md5_key=Secret(MD5_KEY)).merchants()
    assert signature_checker(md5_merchants)(form, "utf-8", PARTNER) is True
    assert signature_checker(md5_merchants)({**form, "sign_type": "md5"}, "utf-8", PARTNER) is False
    # A partner the deployment does not serve has no key to verify with.
    assert signature_checker(md5_merchants)(form, "utf-8", "2088000000000009") is False


def test_signature_checker_verifies_in_the_charset_it_is_given() -> None:
    form = batch_form(extra_memo="退款")
    form["sign"] = sign(form, sign_type="MD5", charset="gbk", md5_key=MD5_KEY)

    check = signature_checker(Settings(sign_type="MD5", md5_key=Secret(MD5_KEY)).merchants())
    assert check(form, "gbk", PARTNER) is True
    assert check(form, "utf-8", PARTNER) is False


@pytest.mark.parametrize(("configured", "sent"), [("utf-8", "gbk"), ("gbk", "utf-8")])
def test_a_form_signed_in_the_other_charset_verifies_in_the_charset_it_was_decoded_in(
    configured: str, sent: str
) -> None:
    """Alipay signs in the charset it sends; the Content-Type label names it."""
    form = batch_form(result_details="2024050121001004270231872174^0.01^SUCCESS")
    form["extra_memo"] = "协商退款 + 部分"
    form["sign"] = sign(form, sign_type="MD5", charset=sent, md5_key=MD5_KEY)
    settings = Settings(sign_type="MD5", md5_key=Secret(MD5_KEY), input_charset=configured)
    fakes = Fakes()
    app = fakes.app(charset=configured, verify_signature=signature_checker(settings.merchants()))

    reply = call(
        app,
        body=encode_form(form, sent),
        content_type=f"application/x-www-form-urlencoded; charset={sent}",
    )

    assert (reply.status, reply.body) == (200, b"success")
    assert fakes.enqueued[0][1]["extra_memo"] == "协商退款 + 部分"


def test_readiness_probe_needs_every_check_and_caches_the_answer() -> None:
    calls: list[str] = []
    broker_up = [True]

    def broker() -> None:
        calls.append("broker")
        if not broker_up[0]:
            raise BusUnavailable("down")

    def gateway() -> None:
        calls.append("gateway")

    probe = ReadinessProbe({"broker": broker, "gateway": gateway}, cache_seconds=60)
    assert probe() is True
    broker_up[0] = False
    assert probe() is True  # cached
    assert calls == ["broker", "gateway"]

    fresh = ReadinessProbe({"broker": broker, "gateway": gateway}, cache_seconds=0)
    assert fresh() is False


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://mapi.alipay.com/gateway.do", ("mapi.alipay.com", 443)),
        ("http://127.0.0.1:8090/gateway.do", ("127.0.0.1", 8090)),
        ("http://user:pw@[::1]:9/x", ("::1", 9)),
    ],
)
def test_endpoint(url: str, expected: tuple[str, int]) -> None:
    assert endpoint(url) == expected


# ---------------------------------------------------------------------------
# Several merchants

SHOP_A, SHOP_B, SHOP_C = "2088000000000001", "2088000000000002", "2088000000000003"


def test_the_merchant_is_the_one_whose_key_verifies() -> None:
    fakes = Fakes(partners=(SHOP_A, SHOP_B, SHOP_C), signers=(SHOP_B,))

    reply = post_form(fakes.app(), batch_form())

    assert (reply.status, reply.body) == (200, b"success")
    assert fakes.checked_partners == [SHOP_A, SHOP_B, SHOP_C]
    assert fakes.verified_partners == [SHOP_B]
    assert fakes.enqueued_partners == [SHOP_B]


def test_merchants_sharing_a_key_are_told_apart_by_notify_verify() -> None:
    """Alipay signs every RSA merchant's notifications with one key: only the partner
    the notification was sent to gets `true` from notify_verify."""
    fakes = Fakes(
        partners=(SHOP_A, SHOP_B, SHOP_C), signers=(SHOP_A, SHOP_C), verify_true_for=SHOP_C
    )

    reply = post_form(fakes.app(), batch_form())

    assert (reply.status, reply.body) == (200, b"success")
    assert fakes.verified_partners == [SHOP_A, SHOP_C]
    assert fakes.enqueued_partners == [SHOP_C]


def test_a_notification_no_merchant_confirms_is_refused() -> None:
    fakes = Fakes(partners=(SHOP_A, SHOP_B), signers=(SHOP_A, SHOP_B), verify_answer="invalid")

    reply = post_form(fakes.app(), batch_form())

    assert (reply.status, reply.body) == (403, b"fail")
    assert fakes.verified_partners == [SHOP_A, SHOP_B]
    assert fakes.enqueued == []


def test_false_for_one_partner_does_not_end_the_search() -> None:
    """The gateway may answer `false`, not `invalid`, for another partner's notify_id: the
    next merchant that signed is still asked, and only a notification no one confirms fails."""
    fakes = Fakes(partners=(SHOP_A, SHOP_B), signers=(SHOP_A, SHOP_B), verify_answer="false")

    reply = post_form(fakes.app(), batch_form())

    assert (reply.status, reply.body) == (403, b"fail")
    assert fakes.verified_partners == [SHOP_A, SHOP_B]

    confirmed = Fakes(partners=(SHOP_A, SHOP_B), signers=(SHOP_A, SHOP_B))
    confirmed.notify_verify = lambda notify_id, partner: (  # type: ignore[method-assign]
        "true" if partner == SHOP_B else "false"
    )
    reply = post_form(confirmed.app(), batch_form())
    assert (reply.status, reply.body) == (200, b"success")
    assert confirmed.enqueued_partners == [SHOP_B]


def test_a_merchant_s_own_route_checks_only_its_key() -> None:
    fakes = Fakes(partners=(SHOP_A, SHOP_B))

    reply = post_form(fakes.app(), batch_form(), path=f"/alipay/notify/{SHOP_B}")
    assert (reply.status, reply.body) == (200, b"success")
    assert fakes.checked_partners == [SHOP_B]
    assert fakes.enqueued_partners == [SHOP_B]

    dback = post_form(
        fakes.app(), {"sign_type": "MD5", "sign": SIGN_VALUE}, path=f"/alipay/dback-notify/{SHOP_A}"
    )
    assert dback.status == 200
    assert fakes.enqueued_partners[-1] == SHOP_A


def test_a_route_for_an_unknown_merchant_is_404_and_never_enqueued() -> None:
    fakes = Fakes(partners=(SHOP_A,))

    with capture_logs() as logs:
        reply = post_form(fakes.app(), batch_form(), path="/alipay/notify/shop-z")

    assert (reply.status, reply.body) == (404, b"fail")
    assert fakes.calls == []
    assert [e["reason"] for e in logs if e["event"] == "notify.rejected"] == ["unknown_merchant"]
    assert call(fakes.app(), path="/alipay/notify/a/b", body=b"x").status == 404
