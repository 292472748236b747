"""The OpenAPI settings: the default merchant's application, the gateway, the notify URL."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.openapi import alipay_keys, app_keys
from worker.config.merchants import SINGLE_MERCHANT_VARIABLES
from worker.config.settings import load_settings
from worker.domain.errors import ConfigError

BASE = {"ALIPAY_MD5_KEY": "k3y9x2mq7w1v8b5n4c6z0a2s4d6f8g1h"}


def _app_env(tmp_path: Path) -> dict[str, str]:
    private = tmp_path / "app_private.pem"
    private.write_bytes(app_keys()[0])
    public = tmp_path / "alipay_app_public.pem"
    public.write_bytes(alipay_keys()[1])
    return {
        "ALIPAY_APP_ID": "2021000000000002",
        "ALIPAY_APP_PRIVATE_KEY_FILE": str(private),
        "ALIPAY_APP_PUBLIC_KEY_FILE": str(public),
    }


def test_defaults_point_at_the_local_sandbox() -> None:
    s = load_settings(BASE)
    assert s.openapi_gateway_url == "http://127.0.0.1:8090/openapi/gateway.do"
    assert s.openapi_notify_url == "http://127.0.0.1:8080/alipay/openapi-notify"
    assert s.openapi_max_in_flight == 8
    assert s.app_id is None and s.merchants().default.openapi_app is None


def test_the_app_variables_give_the_default_merchant_its_application(tmp_path: Path) -> None:
    env = {
        **BASE,
        **_app_env(tmp_path),
        "ALIPAY_OPENAPI_GATEWAY_URL": "https://openapi.alipay.com/gateway.do",
        "ALIPAY_OPENAPI_NOTIFY_URL": "https://shop.example/alipay/openapi-notify",
        "OPENAPI_MAX_IN_FLIGHT": "3",
    }
    s = load_settings(env)
    app = s.merchants().default.openapi_app
    assert app is not None and app.app_id == "2021000000000002"
    assert "PRIVATE" not in repr(app) and "PRIVATE" not in str(s.describe())
    assert s.describe()["app_private_key_pem"] == "[set]"
    assert s.openapi_gateway_url == env["ALIPAY_OPENAPI_GATEWAY_URL"]
    assert s.openapi_notify_url == env["ALIPAY_OPENAPI_NOTIFY_URL"]
    assert s.openapi_max_in_flight == 3


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("ALIPAY_APP_ID", "12ab", "ALIPAY_APP_ID must be an OpenAPI app id of 8 to 32 digits"),
        ("OPENAPI_MAX_IN_FLIGHT", "0", "OPENAPI_MAX_IN_FLIGHT"),
        ("ALIPAY_OPENAPI_GATEWAY_URL", "ftp://x", "ALIPAY_OPENAPI_GATEWAY_URL"),
        ("ALIPAY_OPENAPI_NOTIFY_URL", "not a url", "ALIPAY_OPENAPI_NOTIFY_URL"),
    ],
)
def test_a_bad_value_is_named(name: str, value: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({**BASE, name: value})
    assert words in str(caught.value)


def test_the_application_needs_its_id_and_both_keys(tmp_path: Path) -> None:
    env = _app_env(tmp_path)
    del env["ALIPAY_APP_PUBLIC_KEY_FILE"]
    with pytest.raises(ConfigError) as caught:
        load_settings({**BASE, **env})
    assert "ALIPAY_APP_PUBLIC_KEY_FILE required" in str(caught.value)


def test_the_app_variables_are_single_merchant_variables() -> None:
    assert {
        "ALIPAY_APP_ID",
        "ALIPAY_APP_PRIVATE_KEY_FILE",
        "ALIPAY_APP_PUBLIC_KEY_FILE",
    } <= set(SINGLE_MERCHANT_VARIABLES)


def test_a_merchants_file_app_needs_alipays_public_key(tmp_path: Path) -> None:
    private = tmp_path / "app.pem"
    private.write_bytes(app_keys()[0])
    md5 = tmp_path / "md5"
    md5.write_text(BASE["ALIPAY_MD5_KEY"])
    path = tmp_path / "merchants.toml"
    path.write_text(
        f'[[merchants]]\npartner = "2088000000000001"\nmd5_key_file = "{md5}"\n'
        f'app_id = "2021000000000002"\napp_private_key_file = "{private}"\n'
    )
    with pytest.raises(ConfigError) as caught:
        load_settings({"ALIPAY_MERCHANTS_FILE": str(path)})
    assert "app_public_key_file" in str(caught.value)
