"""Settings: defaults, every variable's rules, secrets, key files, the exit path."""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from worker.config import settings as settings_module
from worker.config.settings import (
    EX_CONFIG,
    Secret,
    Settings,
    exit_on_config_error,
    get_settings,
    load_or_exit,
    load_settings,
)
from worker.domain.errors import ConfigError
from worker.observability import redaction
from worker.observability.redaction import REDACTED, _scrub_text

MD5_KEY = "k3y9x2mq7w1v8b5n4c6z0a2s4d6f8g1h"
BASE = {"ALIPAY_MD5_KEY": MD5_KEY}


VARIABLES = [
    "AMQP_URL",
    "DATABASE_URL",
    "REFUND_EXCHANGE",
    "ALIPAY_GATEWAY_URL",
    "ALIPAY_PARTNER",
    "ALIPAY_SIGN_TYPE",
    "ALIPAY_MD5_KEY",
    "ALIPAY_MD5_KEY_FILE",
    "ALIPAY_PRIVATE_KEY_FILE",
    "ALIPAY_PUBLIC_KEY_FILE",
    "ALIPAY_INPUT_CHARSET",
    "ALIPAY_NOTIFY_URL",
    "ALIPAY_DBACK_NOTIFY_URL",
    "BATCH_MAX_ITEMS",
    "BATCH_MAX_WAIT_SECONDS",
    "NOTIFY_BIND",
    "GATEWAY_CONNECT_TIMEOUT",
    "GATEWAY_READ_TIMEOUT",
    "NOTIFY_MAX_BODY_BYTES",
    "LOG_LEVEL",
    "LOG_FORMAT",
    "INTAKE_PREFETCH",
    "INTAKE_QUEUE_TYPE",
    "INTAKE_DELIVERY_LIMIT",
    "METRICS_PORT",
    "LEDGER_RETENTION_DAYS",
]


@pytest.fixture(autouse=True)
def _fresh_redactor(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    redaction._forget_secrets()
    yield
    redaction._forget_secrets()
    get_settings.cache_clear()


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=1024)


def _write(tmp_path: Path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def _private_pem(key: rsa.RSAPrivateKey, fmt: serialization.PrivateFormat) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption())


def _public_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _rsa_env(tmp_path: Path, key: rsa.RSAPrivateKey) -> dict[str, str]:
    return {
        "ALIPAY_SIGN_TYPE": "RSA",
        "ALIPAY_PRIVATE_KEY_FILE": _write(
            tmp_path, "private.pem", _private_pem(key, serialization.PrivateFormat.PKCS8)
        ),
        "ALIPAY_PUBLIC_KEY_FILE": _write(tmp_path, "alipay_public.pem", _public_pem(key)),
    }


def _error(env: dict[str, str]) -> str:
    with pytest.raises(ConfigError) as caught:
        load_settings(env)
    message = str(caught.value)
    assert "\n" not in message
    return message


# --------------------------------------------------------------------------
# Secret
# --------------------------------------------------------------------------


def test_secret_never_shows_itself() -> None:
    secret = Secret(MD5_KEY)
    assert secret.reveal() == MD5_KEY
    for shown in (repr(secret), str(secret), f"{secret}", f"{secret!r}", repr([secret])):
        assert MD5_KEY not in shown
        assert "Secret('**********')" in shown


def test_secret_equality_is_only_between_secrets() -> None:
    assert Secret(MD5_KEY) == Secret(MD5_KEY)
    assert Secret(MD5_KEY) != Secret(MD5_KEY + "x")
    assert Secret(MD5_KEY) != MD5_KEY
    assert MD5_KEY != Secret(MD5_KEY)  # noqa: SIM300 -- the reflected comparison
    assert hash(Secret(MD5_KEY)) == hash(Secret(MD5_KEY))


# --------------------------------------------------------------------------
# Defaults and valid values
# --------------------------------------------------------------------------


def test_defaults_point_at_local_services() -> None:
    s = load_settings(BASE)
    assert s.amqp_url == "amqp://guest:guest@127.0.0.1:5672/%2F"
    assert s.database_url == "postgresql://postgres@127.0.0.1:5432/postgres"
    assert s.refund_exchange == "refunds"
    assert s.gateway_url == "http://127.0.0.1:8090/gateway.do"
    assert s.partner == "2088000000000001"
    assert s.sign_type == "MD5"
    assert s.md5_key == Secret(MD5_KEY)
    assert s.private_key_pem is None and s.alipay_public_key_pem is None
    assert s.input_charset == "utf-8"
    assert s.notify_url == "http://127.0.0.1:8080/alipay/notify"
    assert s.dback_notify_url == "http://127.0.0.1:8080/alipay/dback-notify"
    assert s.batch_max_items == 1000
    assert s.batch_max_wait_seconds == 2.0
    assert (s.notify_bind, s.notify_host, s.notify_port) == ("127.0.0.1:8080", "127.0.0.1", 8080)
    assert (s.gateway_connect_timeout, s.gateway_read_timeout) == (5.0, 30.0)
    assert s.notify_max_body_bytes == 1048576
    assert (s.log_level, s.log_format) == ("INFO", "auto")
    assert (s.intake_prefetch, s.intake_queue_type, s.intake_delivery_limit) == (500, "quorum", 5)
    assert s.metrics_port is None
    assert dataclasses.replace(s, merchant_book=None) == dataclasses.replace(
        Settings(), md5_key=Secret(MD5_KEY)
    )
    assert [m.partner for m in s.merchants()] == ["2088000000000001"]


def test_settings_are_frozen() -> None:
    s = load_settings(BASE)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.partner = "2088000000000002"  # type: ignore[misc]


def test_every_variable_is_read() -> None:
    env = {
        **BASE,
        "AMQP_URL": "amqps://app:pw@rabbit.internal:5671/prod",
        "DATABASE_URL": "postgres://app@db.internal/refunds",
        "REFUND_EXCHANGE": "shop.refunds:v1",
        "ALIPAY_GATEWAY_URL": "https://mapi.alipay.com/gateway.do",
        "ALIPAY_PARTNER": "2088101008267254",
        "ALIPAY_SIGN_TYPE": "md5",
        "ALIPAY_INPUT_CHARSET": "GBK",
        "ALIPAY_NOTIFY_URL": "https://shop.example/alipay/notify",
        "ALIPAY_DBACK_NOTIFY_URL": "https://shop.example/alipay/dback",
        "BATCH_MAX_ITEMS": "250",
        "BATCH_MAX_WAIT_SECONDS": "0.5",
        "NOTIFY_BIND": "[::]:9000",
        "GATEWAY_CONNECT_TIMEOUT": "2",
        "GATEWAY_READ_TIMEOUT": "60",
        "NOTIFY_MAX_BODY_BYTES": "2048",
        "LOG_LEVEL": "warn",
        "LOG_FORMAT": "JSON",
        "INTAKE_PREFETCH": "100",
        "INTAKE_QUEUE_TYPE": "classic",
        "INTAKE_DELIVERY_LIMIT": "3",
        "METRICS_PORT": "9102",
    }
    s = load_settings(env)
    assert s.amqp_url == env["AMQP_URL"]
    assert s.database_url == env["DATABASE_URL"]
    assert s.refund_exchange == "shop.refunds:v1"
    assert s.gateway_url == env["ALIPAY_GATEWAY_URL"]
    assert s.partner == "2088101008267254"
    assert s.sign_type == "MD5"
    assert s.input_charset == "gbk"
    assert s.notify_url == env["ALIPAY_NOTIFY_URL"]
    assert s.dback_notify_url == env["ALIPAY_DBACK_NOTIFY_URL"]
    assert s.batch_max_items == 250
    assert s.batch_max_wait_seconds == 0.5
    assert (s.notify_host, s.notify_port) == ("::", 9000)
    assert (s.gateway_connect_timeout, s.gateway_read_timeout) == (2.0, 60.0)
    assert s.notify_max_body_bytes == 2048
    assert (s.log_level, s.log_format) == ("WARNING", "json")
    assert (s.intake_prefetch, s.intake_queue_type, s.intake_delivery_limit) == (100, "classic", 3)
    assert s.metrics_port == 9102


def test_ledger_retention_defaults_to_400_days_and_is_read() -> None:
    assert load_settings(BASE).ledger_retention_days == 400
    assert load_settings({**BASE, "LEDGER_RETENTION_DAYS": "730"}).ledger_retention_days == 730


def test_blank_values_count_as_unset() -> None:
    s = load_settings({**BASE, "REFUND_EXCHANGE": "", "METRICS_PORT": "  ", "LOG_LEVEL": ""})
    assert (s.refund_exchange, s.metrics_port, s.log_level) == ("refunds", None, "INFO")


def test_the_table_reads_every_variable_and_every_default_passes_its_own_rules() -> None:
    table = {f.name: f.metadata["sources"] for f in dataclasses.fields(Settings)}
    names = {name for sources in table.values() for name, _ in sources}
    assert set(VARIABLES) | {"CLOCK_OFFSET_FILE"} <= names
    for f in dataclasses.fields(Settings):
        for name, parse in table[f.name]:
            if f.default is not None:
                assert parse(name, str(f.default)) == f.default, name


def test_constructing_settings_directly_reads_no_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BATCH_MAX_ITEMS", "7")
    monkeypatch.setenv("ALIPAY_SIGN_TYPE", "RSA")
    assert (Settings().batch_max_items, Settings().sign_type) == (1000, "MD5")


def test_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALIPAY_MD5_KEY", MD5_KEY)
    monkeypatch.setenv("BATCH_MAX_ITEMS", "7")
    assert load_settings().batch_max_items == 7


def test_get_settings_loads_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALIPAY_MD5_KEY", MD5_KEY)
    monkeypatch.setenv("BATCH_MAX_ITEMS", "11")
    first = get_settings()
    monkeypatch.setenv("BATCH_MAX_ITEMS", "12")
    assert get_settings() is first
    assert first.batch_max_items == 11


# --------------------------------------------------------------------------
# Invalid values: one line naming the variable
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("AMQP_URL", "http://127.0.0.1:5672/", "AMQP_URL must be a amqp:// or amqps:// URL"),
        ("AMQP_URL", "amqp://guest:guest@127.0.0.1:99999/", "AMQP_URL is not a valid URL"),
        ("DATABASE_URL", "mysql://db/x", "DATABASE_URL must be a postgresql:// or postgres://"),
        ("REFUND_EXCHANGE", "refunds exchange", "REFUND_EXCHANGE must be 1-200 characters"),
        ("REFUND_EXCHANGE", "x" * 201, "REFUND_EXCHANGE must be 1-200 characters"),
        ("REFUND_EXCHANGE", "amq.topic", "REFUND_EXCHANGE must not start with 'amq.'"),
        ("ALIPAY_GATEWAY_URL", "ftp://gw/", "ALIPAY_GATEWAY_URL must be an http:// or https://"),
        ("ALIPAY_GATEWAY_URL", "https://gw/gateway.do?x=1", "must not have a query string"),
        (
            "ALIPAY_PARTNER",
            "12345",
            "ALIPAY_PARTNER must be 16 digits starting with 2088 (got '12345')",
        ),
        ("ALIPAY_PARTNER", "2088１２３４５６７８９０１２", "ALIPAY_PARTNER must be 16 digits"),
        ("ALIPAY_SIGN_TYPE", "DSA", "ALIPAY_SIGN_TYPE must be one of MD5, RSA (got 'DSA')"),
        ("ALIPAY_INPUT_CHARSET", "utf8", "ALIPAY_INPUT_CHARSET must be one of utf-8, gbk"),
        ("ALIPAY_NOTIFY_URL", "https://shop/notify?src=alipay", "ALIPAY_NOTIFY_URL must not have"),
        ("ALIPAY_NOTIFY_URL", "https://shop/" + "n" * 190, "ALIPAY_NOTIFY_URL must be at most 200"),
        ("ALIPAY_NOTIFY_URL", "/alipay/notify", "ALIPAY_NOTIFY_URL must be an http://"),
        ("ALIPAY_DBACK_NOTIFY_URL", "https://shop/d#x", "ALIPAY_DBACK_NOTIFY_URL must not have"),
        ("BATCH_MAX_ITEMS", "1001", "BATCH_MAX_ITEMS must be between 1 and 1000 (got 1001)"),
        ("BATCH_MAX_ITEMS", "0", "BATCH_MAX_ITEMS must be between 1 and 1000"),
        ("BATCH_MAX_ITEMS", "1e3", "BATCH_MAX_ITEMS must be a whole number"),
        ("BATCH_MAX_ITEMS", "١٠", "BATCH_MAX_ITEMS must be a whole number"),
        ("BATCH_MAX_WAIT_SECONDS", "0", "BATCH_MAX_WAIT_SECONDS must be greater than 0"),
        ("BATCH_MAX_WAIT_SECONDS", "3601", "BATCH_MAX_WAIT_SECONDS must be greater than 0 and at"),
        ("BATCH_MAX_WAIT_SECONDS", "nan", "BATCH_MAX_WAIT_SECONDS must be greater than 0"),
        ("BATCH_MAX_WAIT_SECONDS", "soon", "BATCH_MAX_WAIT_SECONDS must be a number"),
        ("NOTIFY_BIND", "8080", "NOTIFY_BIND must be host:port"),
        ("NOTIFY_BIND", "0.0.0.0:70000", "NOTIFY_BIND port must be between 1 and 65535"),
        ("NOTIFY_BIND", "::1:8080", "NOTIFY_BIND must be host:port"),
        ("GATEWAY_CONNECT_TIMEOUT", "-1", "GATEWAY_CONNECT_TIMEOUT must be greater than 0"),
        ("GATEWAY_READ_TIMEOUT", "inf", "GATEWAY_READ_TIMEOUT must be greater than 0"),
        ("NOTIFY_MAX_BODY_BYTES", "100", "NOTIFY_MAX_BODY_BYTES must be between 1024"),
        ("LOG_LEVEL", "verbose", "LOG_LEVEL must be one of"),
        ("LOG_FORMAT", "xml", "LOG_FORMAT must be one of auto, json, console"),
        ("INTAKE_PREFETCH", "70000", "INTAKE_PREFETCH must be between 1 and 65535"),
        ("INTAKE_QUEUE_TYPE", "stream", "INTAKE_QUEUE_TYPE must be one of quorum, classic"),
        ("INTAKE_DELIVERY_LIMIT", "0", "INTAKE_DELIVERY_LIMIT must be between 1 and 1000"),
        ("METRICS_PORT", "http", "METRICS_PORT must be a whole number"),
        ("LEDGER_RETENTION_DAYS", "7", "LEDGER_RETENTION_DAYS must be between 30 and 36500"),
    ],
)
def test_bad_value_names_the_variable(name: str, value: str, expected: str) -> None:
    assert expected in _error({**BASE, name: value})


def test_url_password_is_masked_in_errors_and_describe() -> None:
    message = _error({**BASE, "AMQP_URL": "http://app:hunter2hunter2@rabbit/"})
    assert "hunter2hunter2" not in message and "***" in message
    s = load_settings({**BASE, "DATABASE_URL": "postgresql://app:hunter2hunter2@db/refunds"})
    assert s.describe()["database_url"] == "postgresql://app:***@db/refunds"
    assert _scrub_text("dsn has hunter2hunter2") == f"dsn has {REDACTED}"


# --------------------------------------------------------------------------
# MD5 key
# --------------------------------------------------------------------------


def test_md5_key_is_required_for_md5() -> None:
    assert _error({}) == (
        "ALIPAY_MD5_KEY or ALIPAY_MD5_KEY_FILE is required when ALIPAY_SIGN_TYPE=MD5"
    )


def test_md5_key_from_file_drops_the_trailing_newline(tmp_path: Path) -> None:
    path = _write(tmp_path, "md5", (MD5_KEY + "\n").encode())
    s = load_settings({"ALIPAY_MD5_KEY_FILE": path})
    assert s.md5_key is not None and s.md5_key.reveal() == MD5_KEY


def test_md5_key_inline_and_file_together_is_an_error(tmp_path: Path) -> None:
    path = _write(tmp_path, "md5", MD5_KEY.encode())
    message = _error({"ALIPAY_MD5_KEY": MD5_KEY, "ALIPAY_MD5_KEY_FILE": path})
    assert "ALIPAY_MD5_KEY" in message and "ALIPAY_MD5_KEY_FILE" in message
    assert MD5_KEY not in message


def test_md5_key_file_missing_names_the_variable(tmp_path: Path) -> None:
    message = _error({"ALIPAY_MD5_KEY_FILE": str(tmp_path / "absent")})
    assert message.startswith("ALIPAY_MD5_KEY_FILE cannot be read")


def test_bad_md5_key_is_not_echoed() -> None:
    bad = "secret key with spaces"
    message = _error({"ALIPAY_MD5_KEY": "x" + bad})
    assert "ALIPAY_MD5_KEY must be printable ASCII" in message
    assert bad not in message


def test_md5_key_is_registered_with_the_redactor() -> None:
    load_settings(BASE)
    assert _scrub_text(f"string to sign ...&x=1{MD5_KEY}") == f"string to sign ...&x=1{REDACTED}"


# --------------------------------------------------------------------------
# RSA keys
# --------------------------------------------------------------------------


def test_rsa_needs_both_key_files(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> None:
    env = _rsa_env(tmp_path, rsa_key)
    no_private = {k: v for k, v in env.items() if k != "ALIPAY_PRIVATE_KEY_FILE"}
    no_public = {k: v for k, v in env.items() if k != "ALIPAY_PUBLIC_KEY_FILE"}
    assert _error(no_private) == "ALIPAY_PRIVATE_KEY_FILE is required when ALIPAY_SIGN_TYPE=RSA"
    assert _error(no_public) == "ALIPAY_PUBLIC_KEY_FILE is required when ALIPAY_SIGN_TYPE=RSA"


def test_rsa_keys_load_and_are_normalised(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> None:
    s = load_settings(_rsa_env(tmp_path, rsa_key))
    assert s.sign_type == "RSA" and s.md5_key is None
    assert s.private_key_pem is not None
    loaded = serialization.load_pem_private_key(s.private_key_pem.reveal().encode(), None)
    assert isinstance(loaded, rsa.RSAPrivateKey)
    assert loaded.private_numbers() == rsa_key.private_numbers()
    assert s.alipay_public_key_pem == _public_pem(rsa_key).decode()
    body = s.private_key_pem.reveal().splitlines()[1]
    assert _scrub_text(f"leak {body}") == f"leak {REDACTED}"


def test_rsa_keys_in_pkcs1_and_bare_base64(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> None:
    pkcs1 = _private_pem(rsa_key, serialization.PrivateFormat.TraditionalOpenSSL)
    der_public = rsa_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    env = {
        "ALIPAY_SIGN_TYPE": "RSA",
        "ALIPAY_PRIVATE_KEY_FILE": _write(tmp_path, "pkcs1.pem", pkcs1),
        "ALIPAY_PUBLIC_KEY_FILE": _write(tmp_path, "pub.txt", base64.b64encode(der_public) + b"\n"),
    }
    s = load_settings(env)
    assert s.alipay_public_key_pem == _public_pem(rsa_key).decode()
    assert s.private_key_pem is not None and "BEGIN PRIVATE KEY" in s.private_key_pem.reveal()


def test_wrong_key_material_is_refused(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> None:
    env = _rsa_env(tmp_path, rsa_key)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ec_pem = ec_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    encrypted = rsa_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"passphrase"),
    )
    cases = {
        "ec.pem": (ec_pem, "ALIPAY_PRIVATE_KEY_FILE holds a key that is not RSA"),
        "enc.pem": (encrypted, "ALIPAY_PRIVATE_KEY_FILE must hold an unencrypted RSA private key"),
        "pub.pem": (_public_pem(rsa_key), "ALIPAY_PRIVATE_KEY_FILE must hold an unencrypted RSA"),
        "junk.pem": (b"not a key at all", "ALIPAY_PRIVATE_KEY_FILE must hold an unencrypted RSA"),
    }
    for name, (data, expected) in cases.items():
        message = _error({**env, "ALIPAY_PRIVATE_KEY_FILE": _write(tmp_path, name, data)})
        assert message.startswith(expected), message
        assert "BEGIN" not in message
    private_as_public = _write(
        tmp_path, "priv-as-pub.pem", _private_pem(rsa_key, serialization.PrivateFormat.PKCS8)
    )
    message = _error({**env, "ALIPAY_PUBLIC_KEY_FILE": private_as_public})
    assert message.startswith("ALIPAY_PUBLIC_KEY_FILE must hold an RSA public key")


def test_oversized_key_file_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, "big", b"A" * (64 * 1024 + 1))
    assert "larger than" in _error({**BASE, "ALIPAY_PRIVATE_KEY_FILE": path})


# --------------------------------------------------------------------------
# describe, merchant, exit
# --------------------------------------------------------------------------


def test_describe_lists_every_setting_without_secrets(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    s = load_settings({**_rsa_env(tmp_path, rsa_key), "ALIPAY_MD5_KEY": MD5_KEY})
    described = s.describe()
    assert set(described) == {f.name for f in dataclasses.fields(Settings)}
    assert described["md5_key"] == "[set]"
    assert described["private_key_pem"] == "[set]"
    assert described["alipay_public_key_pem"] == "[set]"
    assert described["metrics_port"] == "[unset]"
    assert described["batch_max_items"] == "1000"
    text = repr(described)
    assert MD5_KEY not in text and "BEGIN" not in text
    assert load_settings(BASE).describe()["private_key_pem"] == "[unset]"


def test_merchant_carries_the_revealed_secrets() -> None:
    from worker.mapi import Merchant

    s = load_settings({**BASE, "ALIPAY_INPUT_CHARSET": "gbk"})
    merchant = s.merchant()
    assert isinstance(merchant, Merchant)
    assert merchant.partner == s.partner
    assert merchant.charset == "gbk"
    assert merchant.sign_type == "MD5"
    assert merchant.md5_key == MD5_KEY
    assert merchant.private_key_pem is None
    assert merchant.notify_url == s.notify_url
    assert merchant.dback_notify_url == s.dback_notify_url


def test_config_error_exits_78_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    @exit_on_config_error
    def start() -> Settings:
        return load_settings({"ALIPAY_PARTNER": "12345", **BASE})

    with pytest.raises(SystemExit) as caught:
        start()
    assert caught.value.code == EX_CONFIG == 78
    err = capsys.readouterr().err
    assert err == (
        "refund-worker: configuration error: "
        "ALIPAY_PARTNER must be 16 digits starting with 2088 (got '12345')\n"
    )


def test_load_or_exit_uses_the_environment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        load_or_exit()
    assert caught.value.code == 78
    assert capsys.readouterr().err.count("\n") == 1
    monkeypatch.setenv("ALIPAY_MD5_KEY", MD5_KEY)
    assert load_or_exit() is settings_module.get_settings()


def test_the_password_service_is_chosen_per_merchant_with_its_seller() -> None:
    assert load_settings(BASE).merchants().default.service == "nopwd"
    s = load_settings({**BASE, "ALIPAY_REFUND_SERVICE": "pwd"})
    merchant = s.merchants().default
    assert merchant.needs_approval and merchant.seller() == ("2088000000000001", None)
    email = load_settings(
        {**BASE, "ALIPAY_REFUND_SERVICE": "pwd", "ALIPAY_SELLER_EMAIL": "pay@shop.example"}
    )
    assert email.merchants().default.seller() == (None, "pay@shop.example")
    both = load_settings(
        {
            **BASE,
            "ALIPAY_REFUND_SERVICE": "pwd",
            "ALIPAY_SELLER_EMAIL": "pay@shop.example",
            "ALIPAY_SELLER_USER_ID": "2088000000000009",
        }
    )
    assert both.merchants().default.seller() == ("2088000000000009", None)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("ALIPAY_REFUND_SERVICE", "password", "ALIPAY_REFUND_SERVICE"),
        ("ALIPAY_SELLER_USER_ID", "12345", "ALIPAY_SELLER_USER_ID must be 16 digits"),
        ("ALIPAY_SELLER_EMAIL", "a b@c", "ALIPAY_SELLER_EMAIL must be 1-100 printable"),
    ],
)
def test_bad_password_service_settings_name_the_variable(
    name: str, value: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings({**BASE, name: value})
