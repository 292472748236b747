"""The auto-submitting page that carries a password-service request to the gateway.

`refund_fastpay_by_platform_pwd` is not sent by the server: the operator's browser
posts it, and the operator then types the seller account's payment password on
Alipay's page. The page is a form with one hidden input per signed parameter (`sign`
and `sign_type` included), posted to `<gateway>?_input_charset=<charset>`:

* every value is HTML-escaped in its attribute (quotes included: a `'` or `"` in a
  refund reason must not end the attribute, as it does in the official demo's form);
* the page is encoded in `_input_charset`, declares it in `<meta charset>`, and the
  form's `accept-charset` says the same: a browser encodes the fields in that charset,
  and any other encoding of the Chinese text would not match the signature
  (`ILLEGAL_SIGN`);
* `POST` only: a 1,000-item batch is about 80 KB, far beyond what a URL may carry.

The script that submits the form on load is a separate file (`script_src`), so the
page obeys a `script-src 'self'` content security policy; without JavaScript the
operator presses the visible button instead. Pure: the caller serves the bytes with
no-cache headers.
"""

from __future__ import annotations

from collections.abc import Mapping
from html import escape

from worker.domain.errors import ProtocolError
from worker.mapi.charsets import codec_for
from worker.mapi.request import gateway_url_with_charset

FORM_ID = "alipay-gateway-form"


def render_gateway_form(
    gateway_url: str,
    params: Mapping[str, str],
    *,
    charset: str,
    script_src: str | None = None,
    title: str = "Alipay",
    note: str = "",
) -> bytes:
    """The whole HTML page, encoded in `charset`, that posts `params` to the gateway.

    Raises ProtocolError when a value cannot be written in `charset` (reasons are made
    safe for it before signing, so this means a caller's mistake) and ConfigError for a
    bad gateway URL or charset.
    """
    codec = codec_for(charset)
    action = gateway_url_with_charset(gateway_url, charset)
    if codec is None or params.get("_input_charset", charset) != charset:
        raise ProtocolError(f"the form's charset {charset!r} is not its _input_charset")
    inputs = "\n".join(
        f'<input type="hidden" name="{escape(name)}" value="{escape(value)}">'
        for name, value in params.items()
    )
    script = f'<script src="{escape(script_src)}"></script>' if script_src else ""
    page = f"""<!DOCTYPE html>
<html>
<head>
<meta charset="{escape(charset)}">
<meta name="referrer" content="no-referrer">
<title>{escape(title)}</title>
</head>
<body>
<form id="{FORM_ID}" method="post" action="{escape(action)}" accept-charset="{escape(charset)}">
{inputs}
<p>{escape(note)}</p>
<button type="submit" id="continue">Continue to Alipay / 前往支付宝</button>
</form>
{script}
</body>
</html>
"""
    try:
        return page.encode(codec)
    except UnicodeEncodeError as exc:
        raise ProtocolError(
            f"a form value cannot be written in {charset} (position {exc.start})"
        ) from None
