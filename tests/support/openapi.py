"""Helpers for the OpenAPI protocol tests: key pairs and answers signed as Alipay signs them.

`app_keys()` / `alipay_keys()` are two different RSA key pairs, (private PEM, public
PEM), generated in memory once per process (1024 bits: enough for tests, quick).

`signed_answer(method, member, alipay_private)` writes the answer body Alipay sends:
`{"<method>_response": <member>, "sign": "<SHA256withRSA of member>"}` with `member`
kept exactly as given (its whitespace, escapes and key order are what is signed).
"""

from __future__ import annotations

import base64
import functools

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

__all__ = ["alipay_keys", "app_keys", "by_hand_signature", "signed_answer"]


def _pair() -> tuple[bytes, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


@functools.cache
def app_keys() -> tuple[bytes, bytes]:
    """The application's key pair (it signs requests)."""
    return _pair()


@functools.cache
def alipay_keys() -> tuple[bytes, bytes]:
    """Alipay's key pair for the application (it signs answers and notifications)."""
    return _pair()


def by_hand_signature(text: str, private_pem: bytes, algorithm: str = "sha256") -> str:
    """SHA256withRSA (or SHA1withRSA) PKCS#1 v1.5 of the UTF-8 bytes of `text`, base64."""
    key = serialization.load_pem_private_key(private_pem, password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    digest: hashes.HashAlgorithm = hashes.SHA256() if algorithm == "sha256" else hashes.SHA1()
    return base64.b64encode(key.sign(text.encode("utf-8"), padding.PKCS1v15(), digest)).decode()


def signed_answer(
    method: str,
    member: str,
    alipay_private: bytes,
    *,
    name: str | None = None,
    sign_first: bool = False,
    algorithm: str = "sha256",
) -> str:
    """The answer body with `member` as the method's (or `name`d) member, signed."""
    member_name = name or method.replace(".", "_") + "_response"
    sign = by_hand_signature(member, alipay_private, algorithm)
    if sign_first:
        return f'{{"sign":"{sign}","{member_name}":{member}}}'
    return f'{{"{member_name}":{member},"sign":"{sign}"}}'
