"""`refund-worker sandbox` options: help, defaults from the worker's environment, errors."""

from __future__ import annotations

import argparse
import json
from decimal import Decimal
from pathlib import Path

import pytest

from sandbox import cli
from sandbox.keys import ensure_alipay_keys
from worker.domain.errors import ConfigError

OPTIONS = (
    "--bind",
    "--state-dir",
    "--partner",
    "--md5-key",
    "--md5-key-file",
    "--merchant-public-key-file",
    "--time-factor",
    "--process-delay",
    "--auto-trades",
    "--no-auto-trades",
    "--auto-trade-amount",
    "--seed",
    "--faults",
    "--threads",
    "--notify-verify-seconds",
    "--refund-limit-mode",
)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="refund-worker sandbox")
    cli.add_arguments(parser)
    return parser.parse_args(argv)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "ALIPAY_PARTNER",
        "ALIPAY_MD5_KEY",
        "ALIPAY_MD5_KEY_FILE",
        "LOG_LEVEL",
        "SANDBOX_NOTIFY_VERIFY_SECONDS",
        "SANDBOX_REFUND_LIMIT_MODE",
    ):
        monkeypatch.delenv(name, raising=False)


def test_help_documents_every_option_and_shows_no_key(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALIPAY_MD5_KEY", "secret-md5-key-0123456789")
    with pytest.raises(SystemExit) as exited:
        parse(["--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out
    for option in OPTIONS:
        assert option in text, option
    assert "127.0.0.1:8090" in text
    assert "secret-md5-key" not in text


def test_defaults_come_from_the_workers_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALIPAY_PARTNER", "2088123412341234")
    monkeypatch.setenv("ALIPAY_MD5_KEY", "env-key-0123456789")
    config = cli.build_config(parse([]))
    assert (config.host, config.port) == ("127.0.0.1", 8090)
    assert config.partner == "2088123412341234"
    assert config.md5_key == "env-key-0123456789"
    assert config.auto_trades is True
    assert config.auto_trade_amount == Decimal("1000000.00")
    assert config.state_dir == Path("var/sandbox")
    assert "env-key" not in repr(config)


def test_md5_key_sources_follow_the_workers_rules(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = tmp_path / "md5.key"
    key.write_text("file-key-0123456789\r\n")
    monkeypatch.setenv("ALIPAY_MD5_KEY_FILE", str(key))
    assert cli.build_config(parse([])).md5_key == "file-key-0123456789"
    monkeypatch.setenv("ALIPAY_MD5_KEY", "inline-key-0123456789")
    with pytest.raises(ConfigError, match="only one of ALIPAY_MD5_KEY and ALIPAY_MD5_KEY_FILE"):
        cli.build_config(parse([]))
    # An option on the command line wins over the environment.
    assert cli.build_config(parse(["--md5-key", "cli-key-0123"])).md5_key == "cli-key-0123"
    with pytest.raises(ConfigError, match="only one of --md5-key and --md5-key-file"):
        cli.build_config(parse(["--md5-key", "a-key-123", "--md5-key-file", str(key)]))
    with pytest.raises(ConfigError, match="printable ASCII"):
        cli.build_config(parse(["--md5-key", "has space"]))


def test_key_file_and_faults_from_files(tmp_path: Path) -> None:
    key = tmp_path / "md5.key"
    key.write_text("file-key-0123456789\n")
    faults = tmp_path / "faults.json"
    faults.write_text(json.dumps({"lock_error": {"count": 2}, "seed": 3}))
    config = cli.build_config(
        parse(
            [
                "--md5-key-file",
                str(key),
                "--faults",
                f"@{faults}",
                "--no-auto-trades",
                "--bind",
                "0.0.0.0:9000",
                "--time-factor",
                "0.001",
            ]
        )
    )
    assert config.md5_key == "file-key-0123456789"
    assert config.faults.faults["lock_error"].count == 2
    assert config.faults.seed == 3
    assert config.auto_trades is False
    assert (config.bind, config.time_factor) == ("0.0.0.0:9000", 0.001)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "no merchant key"),
        (["--md5-key", "k" * 16, "--bind", "localhost"], "host:port"),
        (["--md5-key", "k" * 16, "--partner", "1234"], "partner"),
        (["--md5-key", "k" * 16, "--time-factor", "0"], "time-factor"),
        (["--md5-key", "k" * 16, "--auto-trade-amount", "5"], "auto-trade-amount"),
        (["--md5-key", "k" * 16, "--auto-trade-amount", "lots"], "auto-trade-amount"),
        (["--md5-key", "k" * 16, "--faults", "{oops"], "faults"),
        (["--md5-key", "k" * 16, "--faults", '{"nope": {}}'], "unknown fault"),
        (["--md5-key-file", "/nonexistent/key"], "cannot read"),
        (["--md5-key", "k" * 16, "--threads", "0"], "threads"),
    ],
)
def test_bad_settings_name_the_option(argv: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        cli.build_config(parse(argv))


def test_run_exits_78_with_one_line_on_bad_settings(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.run(parse(["--log-format", "json"])) == cli.EXIT_CONFIG
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no merchant key" in err


def test_alipay_key_pair_is_made_once_and_kept(tmp_path: Path) -> None:
    first = ensure_alipay_keys(tmp_path)
    second = ensure_alipay_keys(tmp_path)
    assert first.private_pem == second.private_pem
    assert (tmp_path / "alipay_public_key.pem").read_bytes() == first.public_pem
    assert "PRIVATE" not in repr(first)
    assert (tmp_path / "alipay_private_key.pem").stat().st_mode & 0o777 == 0o600


def test_gateway_rules_default_to_alipays_and_come_from_options_or_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = cli.build_config(parse(["--md5-key", "k"]))
    assert (config.notify_verify_seconds, config.refund_limit_mode) == (60.0, "refuse")
    config = cli.build_config(
        parse(["--md5-key", "k", "--notify-verify-seconds", "0.5", "--refund-limit-mode", "skip"])
    )
    assert (config.notify_verify_seconds, config.refund_limit_mode) == (0.5, "skip")
    monkeypatch.setenv("SANDBOX_NOTIFY_VERIFY_SECONDS", "2")
    monkeypatch.setenv("SANDBOX_REFUND_LIMIT_MODE", "skip")
    config = cli.build_config(parse(["--md5-key", "k"]))
    assert (config.notify_verify_seconds, config.refund_limit_mode) == (2.0, "skip")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--notify-verify-seconds", "0"], "notify_verify_seconds"),
        (["--notify-verify-seconds", "inf"], "notify_verify_seconds"),
    ],
)
def test_bad_gateway_rules_are_refused(argv: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        cli.build_config(parse(["--md5-key", "k", *argv]))


def test_a_bad_refund_limit_mode_from_the_environment_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SANDBOX_REFUND_LIMIT_MODE", "ignore")
    with pytest.raises(ConfigError, match="refund_limit_mode"):
        cli.build_config(parse(["--md5-key", "k"]))
