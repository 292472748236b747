"""Log setup and redaction: what reaches the stream, rendered as JSON lines."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

import pytest
import structlog

from worker.config.settings import Secret
from worker.observability import redaction, setup, writer
from worker.observability.logging import (
    REDACTED,
    LineWriter,
    configure_logging,
    flush_logs,
    is_secret_key,
    register_secret,
)

MD5_KEY = "k3y9x2mq7w1v8b5n4c6z0a2s4d6f8g1h"
# Test-only: PEM-shaped text with a made-up body (not a key), to prove the redactor
# hides anything that looks like key material.
PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "MIICXAIBAAKBgQC1hTq1u7f0m8n4d0oBr7m9PzQ0m3sQ2k7m8Hq2eWl0p4dJxk3Q\n"
    "-----END RSA PRIVATE KEY-----"
)


@pytest.fixture(autouse=True)
def _clean_logging() -> Iterator[None]:
    redaction._forget_secrets()
    yield
    redaction._forget_secrets()
    root = logging.getLogger()
    for handler in [h for h in root.handlers if h.get_name() == "refund-worker"]:
        root.removeHandler(handler)
        handler.close()
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


def test_registered_secret_in_a_plain_event_is_redacted() -> None:
    # A flat event (strings, numbers, None) is scanned in one pass; a hit anywhere still
    # takes the value-by-value walk.
    register_secret(MD5_KEY)
    stream = _json_stream()
    structlog.get_logger("t").info(
        "refund.received", refund_id="r-1", amount="1.00", detail=f"with {MD5_KEY}!", n=3, x=None
    )
    assert MD5_KEY not in stream.getvalue()
    (line,) = _lines(stream)
    assert line["detail"] == f"with {REDACTED}!"
    assert (line["refund_id"], line["amount"], line["n"], line["x"]) == ("r-1", "1.00", 3, None)


def test_plain_event_without_secrets_is_rendered_unchanged() -> None:
    register_secret(MD5_KEY)
    # Halves of a secret in two values are no secret in either value.
    half = len(MD5_KEY) // 2
    event = {"a": MD5_KEY[:half], "b": MD5_KEY[half:], "amount": "12.50", "ok": True}
    assert redaction.redact(None, "info", dict(event)) == event


@pytest.mark.parametrize(
    "fields",
    [
        {"refund_id": "r-1", "amount": "12.34", "code": None},
        {"reason": "退款 ünïcödé", "n": 1, "f": 1.5, "big": 10**20, "flag": False},
        {"items": [1, "two", {"three": [None]}], "empty": {}},
        {"inf": float("inf"), "neg": -0.0},
    ],
)
def test_json_lines_are_what_structlogs_json_renderer_writes(fields: dict[str, Any]) -> None:
    # `"key": "value"`, ASCII, keys in event order: what an operator's grep for one
    # refund's story expects (devtools/demo.py prints it).
    stream = _json_stream()
    structlog.get_logger("t").info("fields", **fields)
    (raw,) = stream.getvalue().splitlines()
    line = json.loads(raw)
    assert raw == structlog.processors.JSONRenderer()(None, "info", dict(line))
    assert {key: line[key] for key in fields} == fields


def test_the_redactor_is_the_last_step_before_rendering() -> None:
    configure_logging("INFO", "json", io.StringIO())
    own = structlog.get_config()["processors"]
    assert own[-2:] == [redaction.redact, setup.JSON_RENDERER]
    (handler,) = [h for h in logging.getLogger().handlers if h.get_name() == "refund-worker"]
    formatter = handler.formatter
    assert isinstance(formatter, structlog.stdlib.ProcessorFormatter)
    assert formatter.processors[-2:] == [redaction.redact, setup.JSON_RENDERER]


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


def test_project_events_make_no_stdlib_record_and_library_records_skip_lookups() -> None:
    # One line per refund per role: the project's events take structlog's native path
    # (no stdlib LogRecord at all); other libraries' records skip the stdlib's per-record
    # lookups of fields no renderer shows (caller's file and line, thread, process).
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    stream = _json_stream("INFO")
    keep = Keep()
    logging.getLogger().addHandler(keep)
    try:
        structlog.get_logger("worker.test").info("refund.received", refund_id="r-1")
        logging.getLogger("some.library").info("library line")
    finally:
        logging.getLogger().removeHandler(keep)
    assert [line["event"] for line in _lines(stream)] == ["refund.received", "library line"]
    assert len(records) == 1
    record = records[0]
    assert record.name == "some.library"
    assert record.thread is None
    assert record.process is None
    assert record.lineno == 0


def _buffered(stream: TextIO, interval: float = 60.0) -> None:
    configure_logging("INFO", "json", stream, buffered=True, flush_interval=interval)


def test_buffered_lines_wait_and_a_warning_writes_them_in_order() -> None:
    stream = io.StringIO()
    _buffered(stream)
    structlog.get_logger("worker.intake").info("refund.received", refund_id="r-1")
    logging.getLogger("some.library").info("library line")
    assert stream.getvalue() == ""
    structlog.get_logger("worker.intake").warning("refund.conflicting_duplicate", refund_id="r-1")
    assert [line["event"] for line in _lines(stream)] == [
        "refund.received",
        "library line",
        "refund.conflicting_duplicate",
    ]


def test_library_warnings_are_written_at_once_too() -> None:
    stream = io.StringIO()
    _buffered(stream)
    structlog.get_logger("t").info("first")
    logging.getLogger("pika.connection").warning("connection lost")
    assert [line["event"] for line in _lines(stream)] == ["first", "connection lost"]


def test_buffered_lines_are_written_by_the_flusher_within_the_interval() -> None:
    stream = io.StringIO()
    _buffered(stream, interval=0.02)
    structlog.get_logger("t").info("refund.batched", refund_id="r-2")
    deadline = time.monotonic() + 10
    while not stream.getvalue() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [line["event"] for line in _lines(stream)] == ["refund.batched"]


def test_buffered_lines_are_written_at_the_size_bound_and_on_flush_logs() -> None:
    stream = io.StringIO()
    writer = LineWriter(stream, buffered=True, flush_interval=60.0, max_pending=100)
    writer.write_line("a" * 60, logging.INFO)
    assert stream.getvalue() == ""
    writer.write_line("b" * 60, logging.INFO)
    assert stream.getvalue() == "a" * 60 + "\n" + "b" * 60 + "\n"
    writer.write_line("c", logging.DEBUG)
    flush_logs()
    assert stream.getvalue().endswith("\nc\n")
    writer.close()
    writer.write_line("after close", logging.INFO)
    assert stream.getvalue().endswith("\nafter close\n")


def test_buffered_lines_are_redacted_like_the_others() -> None:
    register_secret(MD5_KEY)
    stream = io.StringIO()
    _buffered(stream)
    structlog.get_logger("t").info("x", sign="0f1e2d3c4b5a69788796a5b4c3d2e1f0", note=MD5_KEY)
    logging.getLogger("some.library").info("key %s", MD5_KEY)
    flush_logs()
    raw = stream.getvalue()
    assert MD5_KEY not in raw and "0f1e2d3c4b5a" not in raw
    first, second = _lines(stream)
    assert first["sign"] == REDACTED and first["note"] == REDACTED
    assert second["event"] == f"key {REDACTED}"


def test_pieces_are_whole_lines_of_at_most_one_atomic_write() -> None:
    lines = [f"{n:04d}" + "x" * 295 + "\n" for n in range(40)]  # 300 bytes each
    long_line = "L" * 5000 + "\n"
    wide = "退" * 1100 + "\n"  # 1101 characters, up to 4404 bytes
    pieces = writer._pieces([*lines[:20], long_line, *lines[20:], wide])
    assert "".join(pieces) == "".join([*lines[:20], long_line, *lines[20:], wide])
    assert all(piece.endswith("\n") for piece in pieces)
    assert long_line in pieces and wide in pieces
    for piece in pieces:
        if piece not in (long_line, wide):
            assert len(piece.encode()) <= writer.ATOMIC_WRITE_BYTES


_WRITER = """
import sys
from worker.observability.logging import configure_logging, flush_logs
import structlog
configure_logging("INFO", "json", buffered=True, flush_interval=60.0)
log = structlog.get_logger("worker.test")
for n in range(int(sys.argv[1])):
    log.info("refund.received", refund_id=f"{sys.argv[2]}-{n}", pad="p" * 200)
    if n % 997 == 0:
        flush_logs()
"""


def test_processes_sharing_one_pipe_never_cut_into_each_others_lines() -> None:
    # Like gunicorn's master and workers on one standard output: each writes large
    # buffered batches while the other does.
    count = 4000
    read_end, write_end = os.pipe()
    root = Path(__file__).resolve().parents[2]
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(count), name],
            stdout=write_end,
            cwd=root,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        for name in ("a", "b", "c")
    ]
    os.close(write_end)
    chunks = []
    with os.fdopen(read_end, "rb") as reader:
        while data := reader.read(1000):  # a slow reader keeps the pipe full
            chunks.append(data)
            time.sleep(0.0005)
    assert all(w.wait(60) == 0 for w in writers)
    lines = b"".join(chunks).decode().splitlines()
    ids = [json.loads(line)["refund_id"] for line in lines]  # every line parses
    assert len(ids) == 3 * count and len(set(ids)) == 3 * count


_EXITING = """
import os, signal, sys
from worker.observability.logging import configure_logging
import structlog
configure_logging("INFO", "json", buffered=True, flush_interval=60.0)
log = structlog.get_logger("worker.test")
if sys.argv[1] == "sigterm":
    from worker.entrypoints.roles._common import stop_on_signals
    stop = stop_on_signals()
    log.info("refund.received", refund_id="r-exit")
    os.kill(os.getpid(), signal.SIGTERM)
    stop.wait(10)
    log.info("role.stopped")
else:
    log.info("refund.received", refund_id="r-exit")
    sys.exit(0)
"""


@pytest.mark.parametrize("how", ["exit", "sigterm"])
def test_buffered_lines_are_written_when_the_process_ends(how: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _EXITING, how],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0, done.stderr
    events = [json.loads(line)["event"] for line in done.stdout.splitlines()]
    expected = {
        "exit": ["refund.received"],
        "sigterm": ["refund.received", "role.stopping", "role.stopped"],
    }[how]
    assert events == expected


def test_a_forked_child_does_not_repeat_the_parents_waiting_lines(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    with path.open("a", encoding="utf-8") as out:
        _buffered(out)
        structlog.get_logger("t").info("parent.before_fork")
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            structlog.get_logger("t").info("child.line")
            flush_logs()
            os._exit(0)
        os.waitpid(pid, 0)
        structlog.get_logger("t").info("parent.after_fork")
        flush_logs()
    events = [json.loads(line)["event"] for line in path.read_text().splitlines()]
    assert events == ["parent.before_fork", "child.line", "parent.after_fork"]
