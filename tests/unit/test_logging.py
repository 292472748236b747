"""Log setup and redaction: what reaches the stream, rendered as JSON lines."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import structlog

from worker import logging as worker_logging
from worker.logging import REDACTED, configure_logging, is_secret_key, register_secret
from worker.settings import Secret

MD5_KEY = "k3y9x2mq7w1v8b5n4c6z0a2s4d6f8g1h"
PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "MIICXAIBAAKBgQC1hTq1u7f0m8n4d0oBr7m9PzQ0m3sQ2k7m8Hq2eWl0p4dJxk3Q\n"
    "-----END RSA PRIVATE KEY-----"
)


@pytest.fixture(autouse=True)
def _clean_logging() -> Iterator[None]:
    worker_logging._forget_secrets()
    yield
    worker_logging._forget_secrets()
    root = logging.getLogger()
    for handler in [h for h in root.handlers if h.get_name() == "refund-worker"]:
        root.removeHandler(handler)
    root.setLevel(logging.WARNING)
    structlog.reset_defaults()


def _lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def _json_stream(level: str = "DEBUG") -> io.StringIO:
    stream = io.StringIO()
    configure_logging(level, "json", stream)
    return stream


def test_json_line_has_the_standard_keys_and_keeps_ordinary_fields() -> None:
    stream = _json_stream()
    structlog.get_logger("worker.batch").info(
        "batch.submitted",
        batch_no="20240501000000000001",
        refund_id="RF-1",
        sign_type="MD5",
        routing_key="refund.requested",
        amount=Decimal("12.50"),
        items=3,
    )
    (line,) = _lines(stream)
    assert line["event"] == "batch.submitted"
    assert line["level"] == "info"
    assert line["logger"] == "worker.batch"
    assert line["timestamp"].endswith("Z") and "T" in line["timestamp"]
    assert line["batch_no"] == "20240501000000000001"
    assert line["refund_id"] == "RF-1"
    assert line["sign_type"] == "MD5"
    assert line["routing_key"] == "refund.requested"
    assert line["amount"] == "12.50"
    assert line["items"] == 3


def test_values_under_secret_keys_are_redacted_at_any_depth() -> None:
    stream = _json_stream()
    structlog.get_logger("t").info(
        "gateway.request",
        sign="0f1e2d3c4b5a69788796a5b4c3d2e1f0",
        md5_key="abcdefgh12345678",
        params={"sign": "deadbeefdeadbeef", "sign_type": "RSA", "batch_num": 2},
        headers=[{"Authorization": "Bearer tok-123456"}],
        apiKey="secret-value-1",
    )
    (line,) = _lines(stream)
    raw = stream.getvalue()
    for secret in (
        "0f1e2d3c4b5a",
        "abcdefgh1234",
        "deadbeefdeadbeef",
        "tok-123456",
        "secret-value-1",
    ):
        assert secret not in raw
    assert line["sign"] == REDACTED
    assert line["md5_key"] == REDACTED
    assert line["params"] == {"sign": REDACTED, "sign_type": "RSA", "batch_num": 2}
    assert line["headers"] == [{"Authorization": REDACTED}]
    assert line["apiKey"] == REDACTED


def test_registered_secret_is_redacted_inside_any_string() -> None:
    register_secret(MD5_KEY)
    stream = _json_stream()
    log = structlog.get_logger("t")
    log.info(f"signing string ends with {MD5_KEY}", note=["x", {"deep": f"<{MD5_KEY}>"}])
    raw = stream.getvalue()
    assert MD5_KEY not in raw
    (line,) = _lines(stream)
    assert line["event"] == f"signing string ends with {REDACTED}"
    assert line["note"] == ["x", {"deep": f"<{REDACTED}>"}]


def test_pem_blocks_are_redacted_even_when_cut_short() -> None:
    stream = _json_stream()
    structlog.get_logger("t").warning(
        "config.loaded", material=f"before {PEM} after", partial=PEM[:80]
    )
    raw = stream.getvalue()
    assert "MIICXAIBAAKBgQC1hTq1u7f0" not in raw
    (line,) = _lines(stream)
    assert line["material"] == f"before {REDACTED} after"
    assert line["partial"] == REDACTED


def test_exception_text_is_redacted() -> None:
    register_secret(MD5_KEY)
    stream = _json_stream()
    log = structlog.get_logger("t")
    try:
        raise ValueError(f"bad signature for key {MD5_KEY} and {PEM}")
    except ValueError:
        log.exception("gateway.failed", batch_no="20240501000000000001")
    raw = stream.getvalue()
    assert MD5_KEY not in raw
    assert "MIICXAIBAAKBgQC1hTq1u7f0" not in raw
    (line,) = _lines(stream)
    assert "ValueError: bad signature for key [redacted] and [redacted]" in line["exception"]
    assert line["level"] == "error"


def test_stdlib_records_are_formatted_and_redacted_the_same_way() -> None:
    register_secret(MD5_KEY)
    stream = _json_stream("INFO")
    other = logging.getLogger("some.library")
    other.info("connecting with %s", MD5_KEY)
    try:
        raise RuntimeError(MD5_KEY)
    except RuntimeError:
        other.error("failed", exc_info=True)
    raw = stream.getvalue()
    assert MD5_KEY not in raw
    first, second = _lines(stream)
    assert first == {
        "event": f"connecting with {REDACTED}",
        "level": "info",
        "logger": "some.library",
        "timestamp": first["timestamp"],
    }
    assert second["exception"].endswith(f"RuntimeError: {REDACTED}")


def test_objects_are_rendered_as_text_and_scanned() -> None:
    register_secret(MD5_KEY)

    class Holder:
        def __repr__(self) -> str:
            return f"Holder(key={MD5_KEY})"

    stream = _json_stream()
    structlog.get_logger("t").info("x", holder=Holder(), wrapped=Secret(MD5_KEY), raw=b"\xff ok")
    assert MD5_KEY not in stream.getvalue()
    (line,) = _lines(stream)
    assert line["holder"] == f"Holder(key={REDACTED})"
    assert line["wrapped"] == "Secret('**********')"
    assert line["raw"] == "\\xff ok"


def test_short_values_are_not_registered() -> None:
    register_secret("guest")
    stream = _json_stream()
    structlog.get_logger("t").info("login as guest")
    assert _lines(stream)[0]["event"] == "login as guest"


def test_fragment_of_a_registered_multiline_secret_is_redacted() -> None:
    register_secret(PEM)
    stream = _json_stream()
    line_of_key = PEM.splitlines()[1]
    structlog.get_logger("t").info("oops", text=f"part: {line_of_key}")
    assert line_of_key not in stream.getvalue()


def test_describe_markers_stay_readable_under_secret_keys() -> None:
    stream = _json_stream()
    structlog.get_logger("t").info("settings.loaded", md5_key="[set]", private_key_pem="[unset]")
    (line,) = _lines(stream)
    assert line["md5_key"] == "[set]"
    assert line["private_key_pem"] == "[unset]"


@pytest.mark.parametrize(
    "name",
    [
        "key",
        "secret",
        "password",
        "passwd",
        "db_password",
        "sign",
        "rsa_sign",
        "signature",
        "private",
        "private_key",
        "private_key_pem",
        "privateKey",
        "token",
        "access_token",
        "md5_key",
        "MD5Key",
        "md5key",
        "api_key",
        "x-api-key",
        "authorization",
        "Authorization",
        "client_secret",
        "sign_key",
        "cookie",
        "unknown_key",
    ],
)
def test_secret_key_names(name: str) -> None:
    assert is_secret_key(name)


@pytest.mark.parametrize(
    "name",
    [
        "sign_type",
        "refund_id",
        "trade_no",
        "batch_no",
        "notify_id",
        "event",
        "logger",
        "level",
        "timestamp",
        "routing_key",
        "idempotency_key",
        "public_key",
        "key_id",
        "token_count",
        "signed_at",
        "keys",
        "amount",
        "reason",
        "monkey",
        "",
    ],
)
def test_ordinary_key_names(name: str) -> None:
    assert not is_secret_key(name)


def test_configuring_twice_keeps_one_handler() -> None:
    first = io.StringIO()
    configure_logging("INFO", "json", first)
    second = io.StringIO()
    configure_logging("INFO", "json", second)
    structlog.get_logger("t").info("once")
    ours = [h for h in logging.getLogger().handlers if h.get_name() == "refund-worker"]
    assert len(ours) == 1
    assert first.getvalue() == ""
    assert [line["event"] for line in _lines(second)] == ["once"]


def test_level_filters_structlog_and_noisy_libraries() -> None:
    stream = _json_stream("INFO")
    structlog.get_logger("worker.x").debug("hidden.debug")
    structlog.get_logger("worker.x").info("shown.info")
    logging.getLogger("pika.connection").info("hidden pika info")
    logging.getLogger("pika.connection").warning("shown pika warning")
    assert [line["event"] for line in _lines(stream)] == ["shown.info", "shown pika warning"]


def test_console_format_is_human_readable_and_redacted() -> None:
    register_secret(MD5_KEY)
    stream = io.StringIO()
    configure_logging("INFO", "console", stream)
    structlog.get_logger("t").info("refund.received", refund_id="RF-1", sign=MD5_KEY)
    text = stream.getvalue()
    assert "refund.received" in text and "refund_id=RF-1" in text
    assert MD5_KEY not in text and "[redacted]" in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text.splitlines()[0])


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_auto_format_follows_the_stream() -> None:
    plain = io.StringIO()
    configure_logging("INFO", "auto", plain)
    structlog.get_logger("t").info("as.json")
    assert json.loads(plain.getvalue())["event"] == "as.json"

    tty = _Terminal()
    configure_logging("INFO", "auto", tty)
    structlog.get_logger("t").info("as.console")
    assert "as.console" in tty.getvalue()
    with pytest.raises(json.JSONDecodeError):
        json.loads(tty.getvalue())


def test_bound_context_is_rendered() -> None:
    stream = _json_stream()
    structlog.contextvars.bind_contextvars(notify_id="n-1")
    try:
        structlog.get_logger("t").bind(batch_no="b-1").info("notify.received")
    finally:
        structlog.contextvars.clear_contextvars()
    (line,) = _lines(stream)
    assert line["notify_id"] == "n-1" and line["batch_no"] == "b-1"


@pytest.mark.parametrize(("level", "fmt"), [("LOUD", "json"), ("INFO", "xml")])
def test_bad_arguments_are_refused(level: str, fmt: str) -> None:
    with pytest.raises(ValueError):
        configure_logging(level, fmt, io.StringIO())


def test_records_skip_the_caller_thread_and_process_lookups() -> None:
    # One line per refund per role: the stdlib's per-record lookups of fields no renderer
    # shows (caller's file and line, thread, process) are switched off.
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    configure_logging("INFO", "json", io.StringIO())
    keep = Keep()
    logging.getLogger().addHandler(keep)
    try:
        structlog.get_logger("worker.test").info("refund.received", refund_id="r-1")
    finally:
        logging.getLogger().removeHandler(keep)
    assert len(records) == 1
    record = records[0]
    assert record.thread is None
    assert record.process is None
    assert record.lineno == 0
