"""The sandbox's own RSA key pair, standing in for Alipay's.

Notifications for RSA batches are signed with this private key; the worker
verifies them with the public half (`ALIPAY_PUBLIC_KEY_FILE`). The pair is
generated on first start and kept in the state directory, so the worker's
configuration stays valid across sandbox restarts:

* `alipay_private_key.pem`: PKCS#8 PEM, mode 0600, never logged or served;
* `alipay_public_key.pem`: SubjectPublicKeyInfo PEM, safe to share.

The OpenAPI gateway has a pair of its own, made the same way
(`ensure_openapi_keys`): `openapi_alipay_private_key.pem` signs its answers and
coupon notifications, `openapi_alipay_public_key.pem` verifies them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import rsa

from worker.domain.errors import ConfigError
from worker.mapi.keys import KeyFormatError, load_private_key, private_key_pem, public_key_pem

__all__ = [
    "OPENAPI_PRIVATE_KEY_NAME",
    "OPENAPI_PUBLIC_KEY_NAME",
    "PRIVATE_KEY_NAME",
    "PUBLIC_KEY_NAME",
    "AlipayKeys",
    "ensure_alipay_keys",
    "ensure_openapi_keys",
]

PRIVATE_KEY_NAME = "alipay_private_key.pem"
PUBLIC_KEY_NAME = "alipay_public_key.pem"
# The pair standing in for Alipay's OpenAPI key (answers, coupon notifications).
OPENAPI_PRIVATE_KEY_NAME = "openapi_alipay_private_key.pem"
OPENAPI_PUBLIC_KEY_NAME = "openapi_alipay_public_key.pem"
KEY_BITS = 2048


@dataclass(frozen=True)
class AlipayKeys:
    """The sandbox's key pair (PEM bytes) and where the public half lives."""

    private_pem: bytes
    public_pem: bytes
    public_path: Path

    def __repr__(self) -> str:  # never show the private key
        return f"AlipayKeys(public_path={str(self.public_path)!r})"


def ensure_openapi_keys(state_dir: Path) -> AlipayKeys:
    """The OpenAPI gateway's pair (`openapi_alipay_*.pem`), made like the mapi one."""
    return ensure_alipay_keys(
        state_dir, private_name=OPENAPI_PRIVATE_KEY_NAME, public_name=OPENAPI_PUBLIC_KEY_NAME
    )


def ensure_alipay_keys(
    state_dir: Path,
    *,
    private_name: str = PRIVATE_KEY_NAME,
    public_name: str = PUBLIC_KEY_NAME,
) -> AlipayKeys:
    """Load the key pair from `state_dir`, generating it first if it is not there."""
    private_path = state_dir / private_name
    public_path = state_dir / public_name
    state_dir.mkdir(parents=True, exist_ok=True)
    if not private_path.exists():
        key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
        private_pem = private_key_pem(key).encode("ascii")
        tmp = private_path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(private_pem)
        os.replace(tmp, private_path)
    try:
        private_pem = private_path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"cannot load the sandbox key {private_path}: {type(exc).__name__}"
        ) from None
    try:
        loaded = load_private_key(private_pem)
    except KeyFormatError as exc:
        if exc.not_rsa:
            raise ConfigError(f"{private_path} is not an RSA private key") from None
        raise ConfigError(f"cannot load the sandbox key {private_path}: {exc}") from None
    public_pem = public_key_pem(loaded.public_key()).encode("ascii")
    if not public_path.exists() or public_path.read_bytes() != public_pem:
        public_path.write_bytes(public_pem)
    return AlipayKeys(private_pem=private_pem, public_pem=public_pem, public_path=public_path)
