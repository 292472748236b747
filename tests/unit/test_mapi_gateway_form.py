"""The password service's auto-submitting form, checked by an independent MD5 and RSA
computation over what a browser would post from it, in UTF-8 and GBK."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime
from decimal import Decimal
from html.parser import HTMLParser
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.support.sandbox import merchant_rsa_keys
from worker.domain.errors import ConfigError, ProtocolError
from worker.mapi import SERVICE_PWD, Merchant, RefundItem, build_refund_request
from worker.mapi.gateway_form import FORM_ID, render_gateway_form

NOW = datetime(2026, 11, 22, 4, 0, tzinfo=UTC)
MD5_KEY = "0123456789abcdefghijklmnopqrstuv"
PRIVATE_PEM, PUBLIC_PEM = merchant_rsa_keys()
REASONS = ["it's", 'say "yes"', "a<b", "fish & chips", "质量问题，七天无理由退货"]


class _Form(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.meta_charset: str | None = None
        self.form: dict[str, str] = {}
        self.fields: list[tuple[str, str]] = []
        self.scripts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "meta" and "charset" in a:
            self.meta_charset = a["charset"]
        elif tag == "form":
            self.form = a
        elif tag == "input" and a.get("type") == "hidden":
            self.fields.append((a["name"], a["value"]))
        elif tag == "script":
            self.scripts.append(a.get("src", ""))


def _request(charset: str, sign_type: str) -> dict[str, str]:
    merchant = Merchant(
        partner="2088000000000001",
        charset=charset,
        sign_type=sign_type,
        md5_key=MD5_KEY if sign_type == "MD5" else None,
        private_key_pem=PRIVATE_PEM if sign_type == "RSA" else None,
        notify_url="https://shop.example.com/alipay/notify",
    )
    items = [
        RefundItem(f"20261122{n:016d}", Decimal("1.25"), reason) for n, reason in enumerate(REASONS)
    ]
    return build_refund_request(
        merchant,
        batch_no="20261122000000000042",
        items=items,
        now=NOW,
        service=SERVICE_PWD,
        seller_user_id="2088000000000001",
    )


def _posted(page: bytes, charset: str) -> tuple[_Form, dict[str, str]]:
    """What a browser posts: the page decoded in its declared charset, the hidden fields
    encoded in the form's accept-charset, and the gateway decoding them again."""
    parser = _Form()
    parser.feed(page.decode("gbk" if charset == "gbk" else "utf-8"))
    body = urlencode(parser.fields, encoding=parser.form["accept-charset"])
    return parser, dict(parse_qsl(body, encoding=charset, keep_blank_values=True))


def _signing_bytes(fields: dict[str, str], charset: str) -> bytes:
    kept = sorted((k, v) for k, v in fields.items() if k not in ("sign", "sign_type") and v)
    return "&".join(f"{k}={v}" for k, v in kept).encode(charset)


@pytest.mark.parametrize("charset", ["utf-8", "gbk"])
@pytest.mark.parametrize("sign_type", ["MD5", "RSA"])
def test_the_form_a_browser_posts_verifies_independently(charset: str, sign_type: str) -> None:
    params = _request(charset, sign_type)
    page = render_gateway_form(
        "https://mapi.alipay.com/gateway.do", params, charset=charset, script_src="/static/go.js"
    )
    parser, posted = _posted(page, charset)

    assert parser.meta_charset == charset and parser.form["accept-charset"] == charset
    assert parser.form["method"] == "post" and parser.form["id"] == FORM_ID
    action = urlsplit(parser.form["action"])
    assert dict(parse_qsl(action.query)) == {"_input_charset": charset}
    assert parser.scripts == ["/static/go.js"]
    assert posted == params  # every field, sign and sign_type included, unchanged
    for reason in REASONS:
        assert reason in posted["detail_data"]

    data = _signing_bytes(posted, charset)
    if sign_type == "MD5":
        assert hashlib.md5(data + MD5_KEY.encode(charset)).hexdigest() == posted["sign"]
    else:
        public = serialization.load_pem_public_key(PUBLIC_PEM)
        assert isinstance(public, rsa.RSAPublicKey)
        public.verify(
            base64.b64decode(posted["sign"]), data, padding.PKCS1v15(), hashes.SHA1()
        )  # raises InvalidSignature when it does not verify
    assert posted["sign_type"] == sign_type


def test_no_value_can_break_out_of_its_attribute() -> None:
    page = render_gateway_form(
        "https://mapi.alipay.com/gateway.do",
        {"_input_charset": "utf-8", "detail_data": "x'\"><script>alert(1)</script>"},
        charset="utf-8",
    ).decode()
    assert "<script>" not in page
    assert "&#x27;&quot;&gt;&lt;script&gt;" in page
    _parser, posted = _posted(page.encode(), "utf-8")
    assert posted["detail_data"] == "x'\"><script>alert(1)</script>"


def test_a_gbk_page_is_written_in_gbk() -> None:
    params = _request("gbk", "MD5")
    page = render_gateway_form("https://mapi.alipay.com/gateway.do", params, charset="gbk")
    assert "质量问题".encode("gbk") in page
    with pytest.raises(UnicodeDecodeError):
        page.decode("utf-8")


def test_a_charset_other_than_the_signed_one_is_refused() -> None:
    params = _request("gbk", "MD5")
    with pytest.raises(ProtocolError, match="_input_charset"):
        render_gateway_form("https://mapi.alipay.com/gateway.do", params, charset="utf-8")
    with pytest.raises(ConfigError):
        render_gateway_form("ftp://mapi.alipay.com/gateway.do", params, charset="gbk")
