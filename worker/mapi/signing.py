"""Signing and verifying mapi parameter sets.

The string to sign: drop `sign`, `sign_type` and every empty value, sort the
rest by key (byte order; for str keys that is code point order), join as
`k=v` with `&`, raw values, no URL encoding.

* MD5: append the merchant's secret key with no separator, hash the bytes of
  that string in the request charset (GBK bytes when `_input_charset` is
  `gbk`), write 32 lowercase hex digits.
* RSA: SHA1withRSA (PKCS#1 v1.5) over the same bytes with the merchant's
  private key, base64. Notifications signed RSA are checked with Alipay's
  public key.

Keys are passed in as arguments, never read here, and never appear in an
error message. `verify` fails closed: it answers False for anything it cannot
check and compares MD5 digests in constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from worker.domain.errors import SigningError
from worker.mapi.charsets import codec_for, fits
from worker.mapi.keys import signing_private_key, signing_public_key

SIGN_TYPES = frozenset({"MD5", "RSA"})
_UNSIGNED_KEYS = frozenset({"sign", "sign_type"})


def signing_string(params: Mapping[str, str]) -> str:
    """Build the canonical `k=v&k=v` string both sides sign (see module docstring)."""
    kept = sorted((k, v) for k, v in params.items() if k not in _UNSIGNED_KEYS and v != "")
    return "&".join(f"{k}={v}" for k, v in kept)


def sign(
    params: Mapping[str, str],
    *,
    sign_type: str,
    charset: str,
    md5_key: str | None = None,
    private_key_pem: str | bytes | None = None,
) -> str:
    """Sign `params` as the gateway expects; returns the value of the `sign` parameter.

    `sign_type` is `MD5` or `RSA` (upper case, as the gateway requires);
    `charset` is `utf-8` or `gbk` in any case. Raises SigningError when the key
    the sign type needs is missing or unusable, the sign type or charset is
    unknown, or a value cannot be encoded in the charset.
    """
    codec = codec_for(charset)
    if codec is None:
        raise SigningError(f"unsupported charset {charset[:20]!r}: use utf-8 or gbk")
    data = _encoded_signing_string(params, codec)
    if sign_type == "MD5":
        if not md5_key:
            raise SigningError("MD5 signing needs the merchant's MD5 key")
        return _md5_hex(data, md5_key, codec)
    if sign_type == "RSA":
        if not private_key_pem:
            raise SigningError("RSA signing needs the merchant's private key")
        key = signing_private_key(private_key_pem)
        signature = key.sign(data, padding.PKCS1v15(), hashes.SHA1())
        return base64.b64encode(signature).decode("ascii")
    raise SigningError(f"unknown sign_type {str(sign_type)[:20]!r}: use MD5 or RSA")


def verify(
    params: Mapping[str, str],
    *,
    charset: str,
    md5_key: str | None = None,
    public_key_pem: str | bytes | None = None,
) -> bool:
    """Check the `sign` of a received parameter set, using its own `sign_type`.

    MD5 needs `md5_key`, RSA needs Alipay's `public_key_pem`. Returns False
    (never raises) for a missing or malformed signature, an unknown sign type,
    a missing or unusable key, values the charset cannot encode, or a mismatch.
    Verify over the values exactly as decoded from the received body.
    """
    try:
        return _verify(params, charset=charset, md5_key=md5_key, public_key_pem=public_key_pem)
    except (ValueError, TypeError, UnsupportedAlgorithm, InvalidSignature, SigningError):
        return False


def _verify(
    params: Mapping[str, str],
    *,
    charset: str,
    md5_key: str | None,
    public_key_pem: str | bytes | None,
) -> bool:
    received = params.get("sign")
    sign_type = params.get("sign_type")
    codec = codec_for(charset)
    if not isinstance(received, str) or not received or codec is None:
        return False
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in params.items()):
        return False
    if not received.isascii():
        return False
    data = _encoded_signing_string(params, codec)
    if sign_type == "MD5":
        if not md5_key:
            return False
        expected = _md5_hex(data, md5_key, codec)
        return hmac.compare_digest(expected.encode("ascii"), received.lower().encode("ascii"))
    if sign_type == "RSA":
        if not public_key_pem:
            return False
        # A '+' sent unescaped in a form body arrives as a space.
        compact = received.strip().replace(" ", "+")
        signature = base64.b64decode(compact, validate=True)
        key = signing_public_key(public_key_pem)
        key.verify(signature, data, padding.PKCS1v15(), hashes.SHA1())
        return True
    return False


def _encoded_signing_string(params: Mapping[str, str], codec: str) -> bytes:
    try:
        return signing_string(params).encode(codec)
    except UnicodeEncodeError:
        bad = sorted(k for k, v in params.items() if not fits(f"{k}={v}", codec))
        raise SigningError(
            f"parameter(s) {', '.join(bad)[:200]} cannot be encoded in {codec}"
        ) from None


def _md5_hex(data: bytes, md5_key: str, codec: str) -> str:
    try:
        key = md5_key.encode(codec)
    except UnicodeEncodeError:
        raise SigningError("the MD5 key cannot be encoded in the request charset") from None
    return hashlib.md5(data + key).hexdigest()


