"""`application/x-www-form-urlencoded` bodies in a given charset.

Alipay posts notifications as forms whose percent-escapes are bytes in the
request charset (GBK bytes for a GBK merchant). Values must be verified
exactly as received, so decoding is done once, here, in the
declared charset, and never re-encoded before verifying:

* `+` is a space, `%XX` is one byte; a `%` not followed by two hex digits is
  kept as it is (what browsers and urllib do);
* blank values (`a=`) are kept as `""`; a segment without `=` is a key with a
  blank value; empty segments (`a=1&&b=2`) are skipped;
* bytes that are not valid in the charset, an empty key, a repeated key or an
  unsupported charset raise NotifyFormatError.

`encode_form` is the inverse, with `+` for spaces as Alipay writes it.

Speed: a batch request carries up to 1000 items (~80 KB, mostly escapes),
and the sandbox decodes one per request and encodes one notification per
batch. `urllib.parse` does both a byte at a time in Python; here the work is
done by C-level `bytes` methods and codecs, with the results byte for byte
those of `urllib.parse.unquote_to_bytes` / `quote_plus(safe="")` (the unit
tests compare both on random input, and urllib remains the fallback for
anything unusual).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final
from urllib.parse import quote_plus, unquote_to_bytes

from worker.domain.errors import NotifyFormatError, ProtocolError
from worker.mapi.charsets import codec_for

# Bytes `quote_plus(safe="")` writes as they are (urllib's `_ALWAYS_SAFE`).
_SAFE_BYTES: Final = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~"
# Beyond this many distinct bytes to escape, one table pass beats a replace per byte.
_MAX_REPLACE_PASSES: Final = 24
_BYTE: Final = [bytes((byte,)) for byte in range(256)]
_ESCAPED: Final = [b"%%%02X" % byte for byte in range(256)]
_QUOTE_TABLE: Final = [
    chr(byte) if byte in _SAFE_BYTES else "+" if byte == 0x20 else f"%{byte:02X}"
    for byte in range(256)
]


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
    pairs: list[bytes] = []
    for key, value in params.items():
        try:
            pairs.append(quote_form_value(key, codec) + b"=" + quote_form_value(value, codec))
        except UnicodeEncodeError:
            raise ProtocolError(f"parameter {key[:40]!r} cannot be encoded in {codec}") from None
    return b"&".join(pairs)


def unquote_form_value(raw: bytes) -> bytes:
    """`+` -> space, `%XX` -> that byte; equal to `unquote_to_bytes(raw.replace(b"+", b" "))`.

    Every `%` becomes `\\x` (and every backslash is doubled first), so the
    `unicode_escape` codec turns each escape into the code point of its byte
    and Latin-1 turns the text back into those bytes. A `%` without two hex
    digits after it makes that codec fail; such input goes through urllib,
    which keeps the `%` literally.
    """
    data = raw.replace(b"+", b" ")
    if b"%" not in data:
        return data
    escaped = data.replace(b"\\", b"\\\\").replace(b"%", b"\\x")
    try:
        return escaped.decode("unicode_escape").encode("latin-1")
    except UnicodeDecodeError:
        return unquote_to_bytes(data)


def quote_form_value(text: str, codec: str) -> bytes:
    """`text` in `codec`, form-escaped: equal to `quote_plus(text, safe="", encoding=codec)`.

    Letters, digits and `_.-~` stay, a space becomes `+`, every other byte
    `%XX` (upper-case hex). Usually few distinct bytes need escaping (`^`,
    `#`, the bytes of a few CJK characters), so each gets one C-level
    `bytes.replace` (`%` first, as the replacements add `%`; spaces last, as
    `+` itself is escaped); otherwise one table pass. Raises
    UnicodeEncodeError when `codec` cannot hold `text`.
    """
    if not isinstance(text, str):  # urllib's own behaviour (and errors) for anything else
        return quote_plus(text, safe="", encoding=codec, errors="strict").encode("ascii")
    data = text.encode(codec)
    unsafe = set(data.translate(None, _SAFE_BYTES))
    if not unsafe:
        return data
    if len(unsafe) > _MAX_REPLACE_PASSES:
        return data.decode("latin-1").translate(_QUOTE_TABLE).encode("ascii")
    if 0x25 in unsafe:
        data = data.replace(b"%", b"%25")
        unsafe.discard(0x25)
    space = 0x20 in unsafe
    unsafe.discard(0x20)
    for byte in unsafe:
        data = data.replace(_BYTE[byte], _ESCAPED[byte])
    if space:
        data = data.replace(b" ", b"+")
    return data


def _decode_part(raw: bytes, codec: str, what: str) -> str:
    try:
        return unquote_form_value(raw).decode(codec)
    except UnicodeDecodeError:
        raise NotifyFormatError(f"{what} is not valid {codec}") from None
