"""`application/x-www-form-urlencoded` bodies in a given charset.

Alipay posts notifications as forms whose percent-escapes are bytes in the
request charset (GBK bytes for a GBK merchant). Values must be verified
exactly as received (DESIGN 4.4), so decoding is done once, here, in the
declared charset, and never re-encoded before verifying:

* `+` is a space, `%XX` is one byte; a `%` not followed by two hex digits is
  kept as it is (what browsers and urllib do);
* blank values (`a=`) are kept as `""`; a segment without `=` is a key with a
  blank value; empty segments (`a=1&&b=2`) are skipped;
* bytes that are not valid in the charset, an empty key, a repeated key or an
  unsupported charset raise NotifyFormatError.

`encode_form` is the inverse, with `+` for spaces as Alipay writes it.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import quote_plus, unquote_to_bytes

from worker.errors import NotifyFormatError, ProtocolError
from worker.mapi.charsets import codec_for


def decode_form(body: bytes, charset: str) -> dict[str, str]:
    """Decode a form body into a dict of str (rules in the module docstring)."""
    codec = codec_for(charset)
    if codec is None:
        raise NotifyFormatError(f"unsupported form charset {str(charset)[:20]!r}")
    if not isinstance(body, bytes | bytearray):
        raise NotifyFormatError("form body must be bytes")
    result: dict[str, str] = {}
    for segment in bytes(body).split(b"&"):
        if not segment:
            continue
        raw_key, _, raw_value = segment.partition(b"=")
        key = _decode_part(raw_key, codec, "a parameter name")
        if not key:
            raise NotifyFormatError("form has a parameter with an empty name")
        if key in result:
            raise NotifyFormatError(f"form repeats the parameter {key[:40]!r}")
        result[key] = _decode_part(raw_value, codec, f"the value of {key[:40]!r}")
    return result


def encode_form(params: Mapping[str, str], charset: str) -> bytes:
    """Encode `params` as a form body in `charset`, in the mapping's order.

    Raises ProtocolError for an unsupported charset or a value the charset
    cannot encode.
    """
    codec = codec_for(charset)
    if codec is None:
        raise ProtocolError(f"unsupported form charset {str(charset)[:20]!r}")
    pairs: list[str] = []
    for key, value in params.items():
        try:
            pairs.append(
                f"{quote_plus(key, safe='', encoding=codec, errors='strict')}"
                f"={quote_plus(value, safe='', encoding=codec, errors='strict')}"
            )
        except UnicodeEncodeError:
            raise ProtocolError(f"parameter {key[:40]!r} cannot be encoded in {codec}") from None
    return "&".join(pairs).encode("ascii")


def _decode_part(raw: bytes, codec: str, what: str) -> str:
    try:
        return unquote_to_bytes(raw.replace(b"+", b" ")).decode(codec)
    except UnicodeDecodeError:
        raise NotifyFormatError(f"{what} is not valid {codec}") from None
