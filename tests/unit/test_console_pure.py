"""The console's pure parts: session rules, safe redirects, the pages' formatting, the
app's answers without a session (no database is opened for them)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from worker.adapters.postgres.pool import Database
from worker.entrypoints.console import sessions
from worker.entrypoints.console.app import (
    SECURITY_HEADERS,
    BusSettings,
    ConsoleConfig,
    ConsoleDeps,
    age,
    create_app,
    hidden_field,
    when,
)
from worker.entrypoints.console.pages import dead_letter_reason
from worker.services.ports import Delivery
from worker.services.replay import replayed_message

NOW = 1_800_000_000.0


def live(signed_in: float, seen: float, name: object = "alice") -> dict[str, object]:
    return {"operator": name, "signed_in_at": signed_in, "seen_at": seen}


@pytest.mark.parametrize(
    ("session", "expected"),
    [
        ({}, (None, None)),
        (live(NOW - 60, NOW - 10), ("alice", None)),
        (live(NOW - 8 * 3600 + 1, NOW - 5), ("alice", None)),
        (live(NOW - 8 * 3600, NOW - 5), (None, "expired")),
        (live(NOW - 3600, NOW - 30 * 60), (None, "idle")),
        (live(NOW - 3600, NOW - 30 * 60 + 1), ("alice", None)),
        (live(NOW + 3600, NOW), (None, "expired")),
        ({"operator": "alice", "signed_in_at": "x", "seen_at": NOW}, (None, "malformed")),
        (live(NOW, NOW, name=""), (None, None)),
    ],
)
def test_a_session_lives_eight_hours_and_thirty_idle_minutes(
    session: dict[str, object], expected: tuple[str | None, str | None]
) -> None:
    assert sessions.session_operator(session, NOW) == expected


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/batches/B1?x=1", "/batches/B1?x=1"),
        ("/", "/"),
        (None, "/"),
        ("", "/"),
        ("https://evil.example/", "/"),
        ("//evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("\\\\evil.example", "/"),
        ("javascript:alert(1)", "/"),
        ("/a\r\nLocation: x", "/"),
        ("audit", "/"),
        ("/" + "a" * 2001, "/"),
    ],
)
def test_only_local_paths_are_followed_after_sign_in(target: str | None, expected: str) -> None:
    assert sessions.safe_next(target) == expected


def test_the_lock_message_gives_the_end_in_utc_to_the_minute() -> None:
    beijing = timezone(timedelta(hours=8))
    until = datetime(2026, 11, 22, 20, 7, 59, tzinfo=beijing)
    assert sessions.lock_message(until) == "account locked until 12:07 UTC"


def test_formatting_for_people() -> None:
    assert [age(s) for s in (None, 5, 119.4, 3000, 7200, 200000)] == [
        "-", "5s", "119s", "50m", "2.0h", "2.3d",
    ]  # fmt: skip
    assert when(None) == "-"
    assert when(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)) == "2026-01-02 03:04:05 UTC"
    for name in ("sign", "sign_type", "md5_key", "form", "content_hash", "password_hash"):
        assert hidden_field(name), name
    for name in ("refund_id", "trade_no", "state", "batch_no", "amount", "last_error"):
        assert not hidden_field(name), name


def delivery(headers: dict[str, object]) -> Delivery:
    return Delivery(
        delivery_tag=1,
        body=b"{}",
        message_id="m-1",
        headers=headers,
        redelivered=False,
        content_type=None,
        routing_key="refund.requested",
    )


def test_a_dead_letter_goes_back_without_its_dead_letter_headers() -> None:
    message = replayed_message(
        delivery(
            {
                "x-refund-dead-letter-reason": "schema_violation",
                "x-refund-dead-letter-detail": "amount",
                "x-refund-original-routing-key": "refund.requested.v2",
                "x-death": [{}],
                "x-first-death-reason": "rejected",
                "x-delivery-count": 3,
                "trace": "t-1",
            }
        )
    )
    assert message.routing_key == "refund.requested.v2"
    assert dict(message.headers) == {"trace": "t-1"}
    assert (message.body, message.message_id, message.content_type) == (
        b"{}", "m-1", "application/json",
    )  # fmt: skip


def test_the_reason_of_a_dead_letter_is_ours_or_the_brokers() -> None:
    assert dead_letter_reason({"x-refund-dead-letter-reason": "invalid_json"}) == "invalid_json"
    assert dead_letter_reason({"x-first-death-reason": b"delivery_limit"}) == "delivery_limit"
    assert dead_letter_reason({}) == "unknown"


@pytest.fixture
def client():  # type: ignore[no-untyped-def]
    from worker.config.settings import Settings

    db = Database("postgresql://nobody@127.0.0.1:1/none", max_size=1)  # never opened
    deps = ConsoleDeps(
        db=db,
        merchants=Settings().merchants(),
        clock=lambda: datetime.fromtimestamp(NOW, UTC),
        refund_queries=lambda partner: None,
        bus=BusSettings("amqp://guest:guest@127.0.0.1:1/%2F", "refunds"),
    )
    app = create_app(deps, ConsoleConfig(secret_key=b"k" * 32, secure_cookies=True))
    return app.test_client()


def test_without_a_session_a_page_leads_to_sign_in_and_a_post_is_forbidden(client) -> None:  # type: ignore[no-untyped-def]
    answer = client.get("/batches/B1?tab=items")
    assert answer.status_code == 302
    assert answer.headers["Location"] == "/login?next=/batches/B1?tab%3Ditems"
    assert client.get("/").headers["Location"] == "/login?next=/"
    for path in ("/batches/B1/reconcile", "/merchants/2088000000000001/resume", "/logout"):
        answer = client.post(path, data={"csrf_token": "x"})
        assert answer.status_code == 403, path
        assert "Sign-in required" in answer.text
    assert client.get("/healthz").text == "ok\n"


def test_the_sign_in_page_has_a_csrf_token_and_every_header(client) -> None:  # type: ignore[no-untyped-def]
    answer = client.get("/login?next=//evil.example/")
    assert answer.status_code == 200
    assert 'name="csrf_token"' in answer.text
    assert 'name="next" value="/"' in answer.text
    assert "<script" not in answer.text
    for header, value in SECURITY_HEADERS.items():
        assert answer.headers[header] == value
    assert answer.headers["Content-Security-Policy"].startswith("default-src 'self'")
    assert answer.headers["Cache-Control"] == "no-store"
    cookie = answer.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Secure" in cookie
    css = client.get("/static/console.css")
    assert css.status_code == 200 and "no-store" not in css.headers.get("Cache-Control", "")


def test_the_session_key_is_required_beyond_loopback(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from worker.config.settings import load_settings
    from worker.domain.errors import ConfigError
    from worker.entrypoints.roles.console import session_key

    base = {"ALIPAY_MD5_KEY": "0123456789abcdef0123456789abcdef"}
    local = load_settings(base)
    assert local.console_bind == "127.0.0.1:8091" and local.console_on_loopback
    assert not local.console_cookies_secure
    first, second = (session_key(local, on_loopback=True) for _ in range(2))
    assert len(first) == 32 and first != second  # made once per master, never a constant
    wide = load_settings(base | {"CONSOLE_BIND": "0.0.0.0:8091"})
    assert wide.console_cookies_secure
    with pytest.raises(ConfigError, match="CONSOLE_SECRET_KEY_FILE is required"):
        session_key(wide, on_loopback=wide.console_on_loopback)
    key = tmp_path / "key"
    key.write_text("short\n")
    with pytest.raises(ConfigError, match="at least 32 characters") as refused:
        load_settings(base | {"CONSOLE_SECRET_KEY_FILE": str(key)})
    assert "short" not in str(refused.value)  # a secret's text is never in a message
    key.write_text("ab" * 32 + "\n")
    keyed = load_settings(
        base | {"CONSOLE_BIND": "0.0.0.0:8091", "CONSOLE_SECRET_KEY_FILE": str(key)}
    )
    assert session_key(keyed, on_loopback=False) == b"ab" * 32
    assert keyed.describe()["console_secret_key"] == "[set]"
    forced = load_settings(base | {"CONSOLE_SECURE_COOKIES": "true"})
    assert forced.console_cookies_secure
    with pytest.raises(ConfigError, match="CONSOLE_SECURE_COOKIES"):
        load_settings(base | {"CONSOLE_SECURE_COOKIES": "maybe"})
