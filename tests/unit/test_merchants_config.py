"""The merchants file (`ALIPAY_MERCHANTS_FILE`) and the merchants a deployment serves."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.sandbox import merchant_rsa_keys
from worker.config.settings import load_settings
from worker.domain.errors import ConfigError
from worker.domain.merchants import MerchantProfile, Merchants
from worker.mapi import Merchant

MD5_KEY = "merchant-a-md5-key-0123456789abcd"


@pytest.fixture(scope="module")
def rsa_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("keys")
    private_pem, public_pem = merchant_rsa_keys()
    private = folder / "private_key.pem"
    private.write_bytes(private_pem)
    public = folder / "alipay_public_key.pem"
    public.write_bytes(public_pem)
    return private, public


def two_merchants(tmp_path: Path, rsa_files: tuple[Path, Path], suffix: str = ".toml") -> Path:
    md5 = tmp_path / "md5_key"
    md5.write_text(MD5_KEY + "\n")
    private, public = rsa_files
    path = tmp_path / f"merchants{suffix}"
    if suffix == ".toml":
        path.write_text(
            f"""
default = "shop-b"
[[merchants]]
id = "shop-a"
partner = "2088000000000001"
md5_key_file = "{md5}"
[[merchants]]
id = "shop-b"
partner = "2088000000000002"
sign_type = "RSA"
charset = "gbk"
private_key_file = "{private}"
alipay_public_key_file = "{public}"
notify_url = "https://refunds.example.com/alipay/notify/shop-b"
max_in_flight = 2
app_id = "2021000000000002"
app_private_key_file = "{private}"
app_public_key_file = "{public}"
"""
        )
    else:
        path.write_text(
            f"""
default: shop-b
merchants:
  - id: shop-a
    partner: "2088000000000001"
    md5_key_file: {md5}
  - id: shop-b
    partner: "2088000000000002"
    sign_type: RSA
    charset: gbk
    private_key_file: {private}
    alipay_public_key_file: {public}
    notify_url: https://refunds.example.com/alipay/notify/shop-b
    max_in_flight: 2
    app_id: "2021000000000002"
    app_private_key_file: {private}
    app_public_key_file: {public}
"""
        )
    return path


@pytest.mark.parametrize("suffix", [".toml", ".yaml"])
def test_a_merchants_file_describes_every_merchant(
    tmp_path: Path, rsa_files: tuple[Path, Path], suffix: str
) -> None:
    settings = load_settings(
        {"ALIPAY_MERCHANTS_FILE": str(two_merchants(tmp_path, rsa_files, suffix))}
    )
    merchants = settings.merchants()

    assert [m.id for m in merchants] == ["shop-b", "shop-a"]  # the default first
    a, b = merchants.resolve("shop-a"), merchants.default
    assert a is not None and a.partner == "2088000000000001"
    assert (a.gateway.sign_type, a.charset, a.gateway.md5_key) == ("MD5", "utf-8", MD5_KEY)
    assert a.gateway.notify_url == "http://127.0.0.1:8080/alipay/notify"  # the variable's
    assert (b.partner, b.gateway.sign_type, b.charset, b.max_in_flight) == (
        "2088000000000002",
        "RSA",
        "gbk",
        2,
    )
    assert b.gateway.notify_url == "https://refunds.example.com/alipay/notify/shop-b"
    assert b.alipay_public_key_pem is not None and b.gateway.private_key_pem is not None
    assert b.app_id == "2021000000000002" and b.app_public_key_pem is not None
    assert b.app_private_key_pem is not None and "PRIVATE KEY" in b.app_private_key_pem
    assert a.app_id is None and a.app_private_key_pem is None
    assert settings.merchant() == b.gateway
    assert merchants.resolve("2088000000000001") is a
    assert merchants.resolve(None) is b
    assert merchants.resolve("shop-c") is None
    assert merchants.get("2088000000000002") is b
    # No key shows anywhere a merchant is printed.
    described = str(settings.describe()) + repr(merchants) + repr(a) + repr(b)
    assert MD5_KEY not in described and "PRIVATE KEY" not in described


def test_every_problem_of_the_file_is_one_line_naming_the_merchant_and_the_field(
    tmp_path: Path,
) -> None:
    path = tmp_path / "merchants.toml"
    path.write_text(
        f"""
[[merchants]]
id = "shop-a"
partner = "2088000000000001"
md5_key_file = "{tmp_path / "missing"}"
colour = "blue"
[[merchants]]
id = "shop-b"
partner = "1234"
sign_type = "RSA"
max_in_flight = 0
[[merchants]]
partner = "2088000000000003"
charset = "latin-1"
"""
    )
    with pytest.raises(ConfigError) as raised:
        load_settings({"ALIPAY_MERCHANTS_FILE": str(path)})
    lines = str(raised.value).splitlines()
    assert all(line.startswith("ALIPAY_MERCHANTS_FILE: merchant ") for line in lines), lines
    expected = [
        ("merchant 'shop-a'", "unknown field 'colour'"),
        ("merchant 'shop-a'", "md5_key_file cannot be read"),
        ("merchant 'shop-b'", "partner must be 16 digits"),
        ("merchant 'shop-b'", "max_in_flight must be between 1 and 64"),
        ("merchant 'shop-b'", "private_key_file is required when sign_type = 'RSA'"),
        ("merchant 'shop-b'", "alipay_public_key_file is required"),
        ("merchant '2088000000000003'", "charset must be one of utf-8, gbk"),
        ("merchant '2088000000000003'", "md5_key_file is required when sign_type = 'MD5'"),
    ]
    for who, what in expected:
        assert any(who in line and what in line for line in lines), (who, what, lines)
    assert len(lines) == len(expected)


def test_the_single_merchant_variables_stay_unset_next_to_the_file(
    tmp_path: Path, rsa_files: tuple[Path, Path]
) -> None:
    path = two_merchants(tmp_path, rsa_files)
    with pytest.raises(ConfigError, match="ALIPAY_PARTNER, ALIPAY_MD5_KEY must stay unset"):
        load_settings(
            {
                "ALIPAY_MERCHANTS_FILE": str(path),
                "ALIPAY_PARTNER": "2088000000000001",
                "ALIPAY_MD5_KEY": MD5_KEY,
            }
        )


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("merchants = []", "'merchants' must be a non-empty list"),
        ("[[merchants]\n", "cannot be parsed"),
        (
            'default = "shop-z"\n[[merchants]]\npartner = "2088000000000001"\nmd5_key_file = "K"',
            None,
        ),
    ],
)
def test_a_broken_file_is_refused_with_one_clear_line(
    tmp_path: Path, content: str, problem: str | None
) -> None:
    key = tmp_path / "K"
    key.write_text(MD5_KEY)
    path = tmp_path / "merchants.toml"
    path.write_text(content.replace('"K"', f'"{key}"'))
    with pytest.raises(ConfigError) as raised:
        load_settings({"ALIPAY_MERCHANTS_FILE": str(path)})
    assert (problem or "default merchant 'shop-z' is not listed") in str(raised.value)


def test_two_merchants_cannot_share_a_partner_or_a_name() -> None:
    def profile(alias: str, partner: str) -> MerchantProfile:
        return MerchantProfile(id=alias, gateway=Merchant(partner=partner))

    with pytest.raises(ValueError, match="listed twice"):
        Merchants([profile("a", "2088000000000001"), profile("b", "2088000000000001")])
    with pytest.raises(ValueError, match="used twice"):
        Merchants([profile("a", "2088000000000001"), profile("a", "2088000000000002")])
    # An alias may not be another merchant's partner id either.
    with pytest.raises(ValueError, match="used twice"):
        Merchants(
            [profile("2088000000000002", "2088000000000001"), profile("b", "2088000000000002")]
        )


def test_a_bad_file_stops_a_role_with_one_stderr_line_per_problem(tmp_path: Path) -> None:
    path = tmp_path / "merchants.toml"
    path.write_text('[[merchants]]\nid = "shop-a"\npartner = "1"\n[[merchants]]\nid = "shop-b"\n')
    done = subprocess.run(
        [sys.executable, "-m", "worker.entrypoints.cli", "migrate"],
        env={"ALIPAY_MERCHANTS_FILE": str(path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 78
    lines = done.stderr.strip().splitlines()
    assert lines == [
        "refund-worker: configuration error: ALIPAY_MERCHANTS_FILE: merchant 'shop-a':"
        " partner must be 16 digits starting with 2088 (got '1')",
        "refund-worker: configuration error: ALIPAY_MERCHANTS_FILE: merchant 'shop-a':"
        " md5_key_file is required when sign_type = 'MD5'",
        "refund-worker: configuration error: ALIPAY_MERCHANTS_FILE: merchant 'shop-b':"
        " partner is required",
        "refund-worker: configuration error: ALIPAY_MERCHANTS_FILE: merchant 'shop-b':"
        " md5_key_file is required when sign_type = 'MD5'",
    ]
