"""Secret settings: the `Secret` wrapper, the MD5 key, RSA key files, URL passwords.

Rules:

* a secret never appears in an error message: messages name the variable (and the
  path of a key file) and say what is wrong;
* every secret is registered with the log redactor (`register_secret`,
  `worker/observability/redaction.py`) as soon as it is read, before it is checked,
  so even a value that is refused is hidden from every later log line;
* RSA keys are loaded by the protocol library's loader (`worker/mapi/keys.py`) and
  kept in one shape: the private key as PKCS#8 PEM inside a `Secret`, Alipay's public
  key as SubjectPublicKeyInfo PEM.
"""

from __future__ import annotations

import hmac
from typing import Final
from urllib.parse import urlsplit

from worker.config import values
from worker.config.values import Parser
from worker.domain.errors import ConfigError
from worker.mapi.keys import (
    KeyFormatError,
    load_private_key,
    load_public_key,
    private_key_pem,
    public_key_pem,
)
from worker.observability.redaction import register_secret

__all__ = [
    "MAX_KEY_FILE_BYTES",
    "Secret",
    "md5_key",
    "md5_key_file",
    "private_key_file",
    "public_key_file",
    "read_key_file",
    "service_url",
    "session_key_file",
]

# Shortest session signing key accepted (characters of the file, e.g. 64 hex digits).
MIN_SESSION_KEY_CHARS: Final = 32

# Largest key file read: a PEM RSA key is a few kilobytes; anything bigger is a
# wrong path (a log file, /dev/zero), not a key.
MAX_KEY_FILE_BYTES: Final = 64 * 1024


class Secret:
    """A secret string that does not show itself.

    `repr`, `str` and f-strings give ``Secret('**********')``; only `reveal()`
    returns the value. Two secrets compare equal (in constant time) when their
    values are equal; a secret never equals a plain string, so a comparison
    against a literal cannot pass by accident.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError("Secret wraps a str")
        self._value = value

    def reveal(self) -> str:
        """The secret value, for the one place that needs it (signing)."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash((Secret, self._value))


def read_key_file(name: str, path: str) -> str:
    """Text of a key file; errors name the variable and path, never the content."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_KEY_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{name} cannot be read: {exc.strerror or exc} ({path!r})") from None
    if len(data) > MAX_KEY_FILE_BYTES:
        raise ConfigError(f"{name} is larger than {MAX_KEY_FILE_BYTES} bytes ({path!r})")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{name} is not UTF-8 text ({path!r})") from None


def md5_key(name: str, value: str) -> Secret:
    """The merchant's MD5 key, given inline."""
    register_secret(value)
    if not value:
        raise ConfigError(f"{name} is empty")
    if not all("!" <= ch <= "~" for ch in value):
        raise ConfigError(
            f"{name} must be printable ASCII without spaces (value not shown; "
            "Alipay MD5 keys are 32 letters and digits)"
        )
    return Secret(value)


def md5_key_file(name: str, path: str) -> Secret:
    """The merchant's MD5 key from a file; the line break that ends the file is dropped."""
    return md5_key(name, read_key_file(name, path).rstrip("\r\n"))


def private_key_file(name: str, path: str) -> Secret:
    """The merchant's RSA private key from a file, as PKCS#8 PEM."""
    content = read_key_file(name, path)
    register_secret(content)
    try:
        key = load_private_key(content)
    except KeyFormatError as exc:
        if exc.not_rsa:
            raise ConfigError(f"{name} holds a key that is not RSA ({path!r})") from None
        raise ConfigError(
            f"{name} must hold an unencrypted RSA private key, PEM or bare base64 ({path!r})"
        ) from None
    pem = private_key_pem(key)
    register_secret(pem)
    return Secret(pem)


def session_key_file(name: str, path: str) -> Secret:
    """The console's session signing key from a file (one line, at least 32 characters)."""
    value = read_key_file(name, path).strip()
    register_secret(value)
    if len(value) < MIN_SESSION_KEY_CHARS:
        raise ConfigError(
            f"{name} must hold at least {MIN_SESSION_KEY_CHARS} characters, e.g. the output of"
            f" `openssl rand -hex 32` ({path!r})"
        )
    return Secret(value)


def public_key_file(name: str, path: str) -> str:
    """Alipay's RSA public key from a file, as SubjectPublicKeyInfo PEM."""
    content = read_key_file(name, path)
    try:
        key = load_public_key(content)
    except KeyFormatError as exc:
        if exc.not_rsa:
            raise ConfigError(f"{name} holds a key that is not RSA ({path!r})") from None
        raise ConfigError(
            f"{name} must hold an RSA public key, PEM or bare base64 ({path!r})"
        ) from None
    return public_key_pem(key)


def service_url(*schemes: str) -> Parser[str]:
    """`values.service_url`, and the URL's password, if any, hidden from the logs."""
    check = values.service_url(*schemes)

    def parse(name: str, value: str) -> str:
        url = check(name, value)
        try:
            password = urlsplit(url).password
        except ValueError:
            return url
        if password:
            register_secret(password)
        return url

    return parse
