"""Signing OpenAPI requests and verifying Alipay's answers and notifications (RSA2 only).

The string to sign (`signing_string`): every parameter except `sign` (and, for a
notification, except `sign_type` too), empty values dropped for a request and kept
for a notification, sorted by key (code point order; keys are ASCII), joined as
`k=v` with `&`, raw values (no URL encoding), encoded as UTF-8.

* Requests: `sign_type` **is** part of the signed string (unlike mapi).
* Notifications: `sign` and `sign_type` are left out, empty values are kept
  (`notification_signing_string`).
* Answers: the signed content is the raw text of the answer's member, taken from
  the body exactly as received (`worker.openapi.responses`), not parameters.

The signature is SHA256withRSA (PKCS#1 v1.5), base64. Verification is pinned to
SHA-256: a signature made with SHA-1 over the same content does not verify (the
official SDK's verifier accepts either; this one does not).

Keys are passed in as arguments (PEM or bare base64 DER, `worker/mapi/keys.py`),
never read here and never shown in an error message. `verify_rsa2` fails closed:
it answers False for anything it cannot check.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from worker.domain.errors import SigningError
from worker.mapi.keys import signing_private_key, signing_public_key

__all__ = [
    "SIGN_TYPE",
    "notification_signing_string",
    "sign_content",
    "sign_rsa2",
    "signing_string",
    "verify_rsa2",
]

SIGN_TYPE = "RSA2"
# The longest signature worth decoding: a 4096-bit key gives 684 base64 characters.
_MAX_SIGN_CHARS = 1024


def signing_string(params: Mapping[str, str]) -> str:
    """The string a request is signed over: all but `sign`, no empty values, sorted."""
    kept = sorted((k, v) for k, v in params.items() if k != "sign" and v != "")
    return "&".join(f"{k}={v}" for k, v in kept)


def notification_signing_string(params: Mapping[str, str]) -> str:
    """The string a notification is signed over: all but `sign` and `sign_type`, sorted.

    Empty values are kept (as `k=`): Alipay signs every parameter it sends.
    """
    kept = sorted((k, v) for k, v in params.items() if k not in ("sign", "sign_type"))
    return "&".join(f"{k}={v}" for k, v in kept)


def sign_rsa2(params: Mapping[str, str], private_key_pem: str | bytes) -> str:
    """The `sign` of a request's parameters: SHA256withRSA over `signing_string`, base64.

    Raises SigningError when the key is missing or unusable, or a parameter is not
    text or cannot be written in UTF-8 (a lone surrogate).
    """
    if not private_key_pem:
        raise SigningError("RSA2 signing needs the application's private key")
    bad = sorted(str(k)[:40] for k, v in params.items() if not _is_text(k) or not _is_text(v))
    if bad:
        raise SigningError(f"parameter(s) {', '.join(bad)[:200]} are not UTF-8 text")
    key = signing_private_key(private_key_pem)
    data = signing_string(params).encode("utf-8")
    return base64.b64encode(key.sign(data, padding.PKCS1v15(), hashes.SHA256())).decode("ascii")


def sign_content(content: str, private_key_pem: str | bytes) -> str:
    """SHA256withRSA over arbitrary text (an answer member, as the sandbox and tests sign it)."""
    if not private_key_pem:
        raise SigningError("RSA2 signing needs a private key")
    if not _is_text(content):
        raise SigningError("the content to sign is not UTF-8 text")
    key = signing_private_key(private_key_pem)
    signature = key.sign(content.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(signature).decode("ascii")


def verify_rsa2(content: str, sign: str, public_key_pem: str | bytes) -> bool:
    """Whether `sign` is Alipay's SHA256withRSA signature of `content` (UTF-8 bytes).

    False (never an exception) for an empty or malformed signature, a missing or
    unusable key, content that is not UTF-8 text, a SHA-1 signature, or a mismatch.
    A space inside the signature is read as `+` (what an unescaped `+` becomes in a
    decoded form body).
    """
    try:
        return _verify(content, sign, public_key_pem)
    except (ValueError, TypeError, UnsupportedAlgorithm, InvalidSignature, SigningError):
        return False


def _verify(content: str, sign: str, public_key_pem: str | bytes) -> bool:
    if not isinstance(sign, str) or not sign.strip() or len(sign) > _MAX_SIGN_CHARS:
        return False
    if not public_key_pem or not _is_text(content) or not sign.isascii():
        return False
    compact = sign.strip().replace(" ", "+")
    try:
        signature = base64.b64decode(compact, validate=True)
    except binascii.Error:
        return False
    key = signing_public_key(public_key_pem)
    key.verify(signature, content.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())
    return True


def _is_text(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


