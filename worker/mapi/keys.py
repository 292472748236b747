"""RSA keys as merchants and Alipay hand them out: PEM or bare base64, loaded in one place.

A key arrives as text or bytes, in one of two shapes:

* PEM: a private key in PKCS#8 (``BEGIN PRIVATE KEY``) or PKCS#1 (``BEGIN RSA PRIVATE
  KEY``), unencrypted; a public key as SubjectPublicKeyInfo (``BEGIN PUBLIC KEY``) or
  PKCS#1 (``BEGIN RSA PUBLIC KEY``);
* bare base64 of the DER bytes, with no header, as Alipay's key tool writes it; line
  breaks and spaces inside it are ignored.

Loading is pure: no file is read here (the settings, `worker/config/secrets.py`, and
the sandbox, `sandbox/keys.py`, read their files; signing, `worker/mapi/signing.py`,
takes keys as arguments). A key that cannot be used raises `KeyFormatError`, whose
message says what is wrong and never shows any of the key; `not_rsa` tells a well-formed
key of another algorithm apart, for callers that say so in their own words.
"""

from __future__ import annotations

import base64
import binascii
import functools
from typing import Final

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from worker.domain.errors import RefundWorkerError, SigningError

__all__ = [
    "KeyFormatError",
    "load_private_key",
    "load_public_key",
    "private_key_pem",
    "public_key_pem",
]

_PEM_MARK: Final = b"-----BEGIN"


class KeyFormatError(RefundWorkerError):
    """The text is not a usable RSA key. The message never holds any of the key."""

    def __init__(self, message: str, *, not_rsa: bool = False) -> None:
        super().__init__(message)
        self.not_rsa = not_rsa


def load_private_key(data: str | bytes) -> rsa.RSAPrivateKey:
    """An unencrypted RSA private key from PEM (PKCS#1 or PKCS#8) or bare base64 DER."""
    raw = _key_bytes(data)
    try:
        if _PEM_MARK in raw:
            key = serialization.load_pem_private_key(raw, password=None)
        else:
            key = serialization.load_der_private_key(_unbase64(raw), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise KeyFormatError("the RSA private key cannot be loaded") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise KeyFormatError("the private key is not an RSA key", not_rsa=True)
    return key


def load_public_key(data: str | bytes) -> rsa.RSAPublicKey:
    """An RSA public key from PEM (SubjectPublicKeyInfo or PKCS#1) or bare base64 DER."""
    raw = _key_bytes(data)
    try:
        if _PEM_MARK in raw:
            key = serialization.load_pem_public_key(raw)
        else:
            key = serialization.load_der_public_key(_unbase64(raw))
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise KeyFormatError("the RSA public key cannot be loaded") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise KeyFormatError("the public key is not an RSA key", not_rsa=True)
    return key


@functools.lru_cache(maxsize=16)
def signing_private_key(data: str | bytes) -> rsa.RSAPrivateKey:
    """A private key to sign with (mapi or OpenAPI), loaded once per distinct key;
    SigningError when it cannot be read."""
    try:
        return load_private_key(data)
    except KeyFormatError as exc:
        raise SigningError(str(exc)) from None


@functools.lru_cache(maxsize=16)
def signing_public_key(data: str | bytes) -> rsa.RSAPublicKey:
    """Alipay's public key to verify with, loaded once per distinct key; SigningError when
    it cannot be read."""
    try:
        return load_public_key(data)
    except KeyFormatError as exc:
        raise SigningError(str(exc)) from None


def private_key_pem(key: rsa.RSAPrivateKey) -> str:
    """The key as unencrypted PKCS#8 PEM, the one shape the settings keep."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")


def public_key_pem(key: rsa.RSAPublicKey) -> str:
    """The key as SubjectPublicKeyInfo PEM (``BEGIN PUBLIC KEY``)."""
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


def _key_bytes(data: str | bytes) -> bytes:
    try:
        raw = data.encode("ascii") if isinstance(data, str) else bytes(data)
    except UnicodeEncodeError:
        raise KeyFormatError("the key is not ASCII text") from None
    return raw.strip()


def _unbase64(raw: bytes) -> bytes:
    try:
        return base64.b64decode(b"".join(raw.split()), validate=True)
    except (binascii.Error, ValueError):
        raise KeyFormatError("the key is neither PEM nor base64 DER") from None
