"""The two request charsets the gateway accepts, and how Python spells them.

The mapi gateway takes `_input_charset` as `utf-8` or `gbk` in any letter case
(one integration reports a gateway that only verified `UTF-8` in upper case,
so the merchant's own spelling is what gets sent and signed). This module only maps a
spelling to the Python codec that produces the bytes Alipay hashes; the spelling
itself is never rewritten.

GB2312 is deliberately not accepted: its repertoire is smaller than GBK's, so
text sanitized for GBK could still be unencodable in GB2312.
"""

from __future__ import annotations

_CODECS = {"utf-8": "utf-8", "gbk": "gbk"}

SUPPORTED_CHARSETS = frozenset(_CODECS)


def codec_for(charset: str) -> str | None:
    """Return the Python codec for a gateway charset spelling, or None if unsupported."""
    if not isinstance(charset, str) or not charset.isascii():
        return None
    return _CODECS.get(charset.lower())


def fits(text: str, codec: str) -> bool:
    """True when `text` can be encoded in `codec` (lone surrogates never can)."""
    try:
        text.encode(codec)
    except UnicodeEncodeError:
        return False
    return True
