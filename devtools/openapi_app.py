"""The OpenAPI application of a development stack (`devtools.devstack`).

The stack makes the app's RSA2 key pair (or takes the private half it is given), gives
the sandbox the app id and the public half (`--app-id`, `--app-public-key-file`), and,
once the sandbox has started and made its own OpenAPI key pair, writes the sandbox's
public key where the roles read it (`ALIPAY_APP_PUBLIC_KEY_FILE`). Every file lives in
the stack's work directory; no key is ever printed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

__all__ = ["DEFAULT_APP_ID", "StackApp", "app_key_pair"]

# An app id of the sandbox's own range (8-32 digits, `docs/openapi.md`).
DEFAULT_APP_ID = "2021000000000001"


def app_key_pair(private_pem: bytes | None = None) -> tuple[bytes, bytes]:
    """(private PEM, public PEM): a new 2048-bit pair, or the public half of `private_pem`."""
    if private_pem is None:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        loaded = serialization.load_pem_private_key(private_pem, password=None)
        if not isinstance(loaded, rsa.RSAPrivateKey):
            raise ValueError("the OpenAPI app key must be an RSA private key (PEM)")
        key = loaded
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


@dataclass
class StackApp:
    """One app's files under `folder`: its two key halves and the sandbox's public key."""

    folder: Path
    app_id: str = DEFAULT_APP_ID
    private_pem: bytes | None = field(default=None, repr=False)

    @property
    def private_key_file(self) -> Path:
        return self.folder / "app_private_key.pem"

    @property
    def public_key_file(self) -> Path:
        return self.folder / "app_public_key.pem"

    @property
    def alipay_public_key_file(self) -> Path:
        """The sandbox's OpenAPI public key, written by `take_alipay_key`."""
        return self.folder / "openapi_alipay_public_key.pem"

    def write_keys(self) -> None:
        """Write the app's key pair (made now unless given); the private half mode 0600."""
        private, public = app_key_pair(self.private_pem)
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.private_key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(private)
        self.public_key_file.write_bytes(public)

    def sandbox_args(self) -> list[str]:
        return ["--app-id", self.app_id, "--app-public-key-file", str(self.public_key_file)]

    def take_alipay_key(self, info: dict[str, object]) -> None:
        """Store the sandbox's OpenAPI public key from its `GET /_sandbox/info`."""
        openapi = info.get("openapi")
        key = openapi.get("alipay_public_key") if isinstance(openapi, dict) else None
        if not isinstance(key, str) or "PUBLIC KEY" not in key:
            raise RuntimeError("the sandbox's /_sandbox/info has no openapi.alipay_public_key")
        self.alipay_public_key_file.write_text(key, encoding="ascii")

    def env(self, *, gateway_url: str, notify_url: str) -> dict[str, str]:
        """The roles' settings of this app; the app itself only once the sandbox's key is
        known (the three app settings go together)."""
        env = {"ALIPAY_OPENAPI_GATEWAY_URL": gateway_url, "ALIPAY_OPENAPI_NOTIFY_URL": notify_url}
        if self.alipay_public_key_file.exists():
            env["ALIPAY_APP_ID"] = self.app_id
            env["ALIPAY_APP_PRIVATE_KEY_FILE"] = str(self.private_key_file)
            env["ALIPAY_APP_PUBLIC_KEY_FILE"] = str(self.alipay_public_key_file)
        return env
