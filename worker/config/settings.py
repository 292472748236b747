"""Settings: one frozen object read from the environment once per process.

Every variable of the README's "Configuration" (plus a few operational knobs) is parsed and
checked here, at start, so a bad value stops the process with one line naming
the variable instead of failing later in the middle of a batch.

Rules that apply to every variable:

* an unset variable and one set to an empty or blank string are the same:
  the default applies (orchestrators often render unset values as ``""``);
* defaults point at local services and at the local sandbox gateway, so the
  demo runs with no configuration; secrets (the MD5 key, the RSA private key)
  never have a default;
* error messages name the variable and what is wrong; they show the offending
  value for ordinary settings (with any password in a URL masked) and never for
  a secret;
* every secret that is loaded is registered with the log redactor
  (`worker.observability.logging.register_secret`).

`CLOCK_OFFSET_FILE` is for tests only and stays unset in production: the path
of a file holding a number of seconds that `worker.entrypoints.runtime`'s clock adds to the
system time (re-read at most once a second), so the fault-injection suite can
move every worker process across a Beijing midnight without waiting for one.
A missing file means no offset.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hmac
import math
import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Final, ParamSpec, TypeVar
from urllib.parse import SplitResult, urlsplit, urlunsplit

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from worker.domain.errors import ConfigError
from worker.observability.logging import register_secret

if TYPE_CHECKING:
    from worker.mapi import Merchant

__all__ = [
    "EX_CONFIG",
    "Secret",
    "Settings",
    "exit_on_config_error",
    "get_settings",
    "load_or_exit",
    "load_settings",
]

# sysexits.h: "configuration error". Supervisors can tell it from a crash.
EX_CONFIG: Final = 78

# Largest key file read: a PEM RSA key is a few kilobytes; anything bigger is a
# wrong path (a log file, /dev/zero), not a key.
_MAX_KEY_FILE_BYTES: Final = 64 * 1024
# Alipay caps notify_url and dback_notify_url at 200 characters (String(200)).
_MAX_NOTIFY_URL: Final = 200


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


_DEFAULT_AMQP_URL: Final = "amqp://guest:guest@127.0.0.1:5672/%2F"
_DEFAULT_DATABASE_URL: Final = "postgresql://postgres@127.0.0.1:5432/postgres"
_DEFAULT_GATEWAY_URL: Final = "http://127.0.0.1:8090/gateway.do"
_DEFAULT_PARTNER: Final = "2088000000000001"
_DEFAULT_NOTIFY_URL: Final = "http://127.0.0.1:8080/alipay/notify"
_DEFAULT_DBACK_NOTIFY_URL: Final = "http://127.0.0.1:8080/alipay/dback-notify"
_DEFAULT_NOTIFY_BIND: Final = "127.0.0.1:8080"


@dataclass(frozen=True, slots=True)
class Settings:
    """Every setting of the worker, validated. Build it with `load_settings`.

    The field defaults are the no-configuration demo values; constructing
    `Settings(...)` directly skips validation and is meant for tests
    (`dataclasses.replace(settings, batch_max_items=3)`).
    """

    amqp_url: str = _DEFAULT_AMQP_URL
    database_url: str = _DEFAULT_DATABASE_URL
    refund_exchange: str = "refunds"
    gateway_url: str = _DEFAULT_GATEWAY_URL
    partner: str = _DEFAULT_PARTNER
    sign_type: str = "MD5"
    md5_key: Secret | None = None
    private_key_pem: Secret | None = None
    alipay_public_key_pem: str | None = None
    input_charset: str = "utf-8"
    notify_url: str = _DEFAULT_NOTIFY_URL
    dback_notify_url: str = _DEFAULT_DBACK_NOTIFY_URL
    batch_max_items: int = 1000
    batch_max_wait_seconds: float = 2.0
    notify_bind: str = _DEFAULT_NOTIFY_BIND
    gateway_connect_timeout: float = 5.0
    gateway_read_timeout: float = 30.0
    notify_max_body_bytes: int = 1_048_576
    log_level: str = "INFO"
    log_format: str = "auto"
    intake_prefetch: int = 500
    intake_queue_type: str = "quorum"
    intake_delivery_limit: int = 5
    metrics_port: int | None = None
    clock_offset_file: str | None = None
    reconcile_after_seconds: float = 600.0
    reconcile_release_after_seconds: float = 86400.0

    @property
    def notify_host(self) -> str:
        """Host part of `notify_bind`, without the brackets of an IPv6 address."""
        return _split_bind(self.notify_bind)[0]

    @property
    def notify_port(self) -> int:
        """Port part of `notify_bind`."""
        return _split_bind(self.notify_bind)[1]

    def merchant(self) -> Merchant:
        """The merchant identity the mapi protocol functions sign with."""
        from worker.mapi import Merchant

        return Merchant(
            partner=self.partner,
            charset=self.input_charset,
            sign_type=self.sign_type,
            md5_key=self.md5_key.reveal() if self.md5_key is not None else None,
            private_key_pem=(
                self.private_key_pem.reveal() if self.private_key_pem is not None else None
            ),
            notify_url=self.notify_url,
            dback_notify_url=self.dback_notify_url,
        )

    def describe(self) -> dict[str, str]:
        """Every setting as text for a startup log line.

        Secrets and keys show as ``[set]`` or ``[unset]``; a password inside a
        URL shows as ``***``.
        """
        out: dict[str, str] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Secret) or f.name == "alipay_public_key_pem":
                out[f.name] = "[set]" if value is not None else "[unset]"
            elif value is None:
                out[f.name] = "[unset]"
            elif f.name in ("amqp_url", "database_url"):
                out[f.name] = _mask_url(str(value))
            else:
                out[f.name] = str(value)
        return out


# --------------------------------------------------------------------------
# Small parsers. Each takes the variable name (for the message) and the raw text.
# --------------------------------------------------------------------------


def _shown(value: str, limit: int = 80) -> str:
    """A non-secret value quoted for an error message, on one line, bounded."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


def _mask_url(url: str) -> str:
    try:
        parts = urlsplit(url)
        password = parts.password
        if password is None:
            return url
        netloc = parts.netloc.rsplit("@", 1)
        user = netloc[0].split(":", 1)[0]
        return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[1]}"))
    except ValueError:
        return "<unparseable URL>"


def _split_url(name: str, value: str) -> SplitResult:
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 -- raises ValueError for a bad port
    except ValueError:
        raise ConfigError(f"{name} is not a valid URL (got {_shown(_mask_url(value))})") from None
    return parts


def _http_url(name: str, value: str, *, max_length: int | None = None) -> str:
    """An absolute http(s) URL with a host and no query string or fragment."""
    parts = _split_url(name, value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{name} must be an http:// or https:// URL (got {_shown(value)})")
    if parts.query or parts.fragment or "?" in value or "#" in value:
        raise ConfigError(f"{name} must not have a query string or fragment (got {_shown(value)})")
    if any(ch.isspace() for ch in value):
        raise ConfigError(f"{name} must not contain whitespace (got {_shown(value)})")
    if max_length is not None and len(value) > max_length:
        raise ConfigError(
            f"{name} must be at most {max_length} characters (got {len(value)} characters)"
        )
    return value


def _service_url(name: str, value: str, schemes: tuple[str, ...]) -> str:
    parts = _split_url(name, value)
    if parts.scheme not in schemes or not parts.hostname:
        wanted = " or ".join(f"{s}://" for s in schemes)
        raise ConfigError(
            f"{name} must be a {wanted} URL with a host (got {_shown(_mask_url(value))})"
        )
    return value


_INT: Final = re.compile(r"[+-]?[0-9]+")


def _int(name: str, value: str, low: int, high: int) -> int:
    if not _INT.fullmatch(value):
        raise ConfigError(f"{name} must be a whole number (got {_shown(value)})")
    number = int(value)
    if not low <= number <= high:
        raise ConfigError(f"{name} must be between {low} and {high} (got {number})")
    return number


def _float(name: str, value: str, high: float) -> float:
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds (got {_shown(value)})") from None
    if not math.isfinite(number) or not 0 < number <= high:
        raise ConfigError(f"{name} must be greater than 0 and at most {high:g} (got {value})")
    return number


def _choice(name: str, value: str, choices: tuple[str, ...], *, upper: bool = False) -> str:
    normal = value.upper() if upper else value.lower()
    if normal not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)} (got {_shown(value)})")
    return normal


_EXCHANGE: Final = re.compile(r"[A-Za-z0-9._:-]{1,200}")
_PARTNER: Final = re.compile(r"2088[0-9]{12}")
_BIND: Final = re.compile(
    r"(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9][A-Za-z0-9.-]*)):(?P<port>[0-9]{1,5})"
)


def _exchange(name: str, value: str) -> str:
    if not _EXCHANGE.fullmatch(value):
        raise ConfigError(
            f"{name} must be 1-200 characters of letters, digits and . _ - : (got {_shown(value)})"
        )
    if value.startswith("amq."):
        raise ConfigError(f"{name} must not start with 'amq.', RabbitMQ reserves it")
    return value


def _split_bind(value: str) -> tuple[str, int]:
    match = _BIND.fullmatch(value)
    if match is None:
        raise ValueError(value)
    return match["v6"] or match["host"], int(match["port"])


def _bind(name: str, value: str) -> str:
    try:
        _, port = _split_bind(value)
    except ValueError:
        raise ConfigError(
            f"{name} must be host:port, e.g. 0.0.0.0:8080 or [::]:8080 (got {_shown(value)})"
        ) from None
    if not 1 <= port <= 65535:
        raise ConfigError(f"{name} port must be between 1 and 65535 (got {port})")
    return value


# --------------------------------------------------------------------------
# Secrets and key files
# --------------------------------------------------------------------------


def _read_file(name: str, path: str) -> str:
    """Text of a key file; errors name the variable and path, never the content."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(_MAX_KEY_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{name} cannot be read: {exc.strerror or exc} ({path!r})") from None
    if len(data) > _MAX_KEY_FILE_BYTES:
        raise ConfigError(f"{name} is larger than {_MAX_KEY_FILE_BYTES} bytes ({path!r})")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{name} is not UTF-8 text ({path!r})") from None


def _md5_key(name: str, value: str) -> Secret:
    register_secret(value)
    if not value:
        raise ConfigError(f"{name} is empty")
    if not all("!" <= ch <= "~" for ch in value):
        raise ConfigError(
            f"{name} must be printable ASCII without spaces (value not shown; "
            "Alipay MD5 keys are 32 letters and digits)"
        )
    return Secret(value)


def _der_from_text(text: str) -> bytes | None:
    """DER bytes of a bare base64 key (no PEM header), as Alipay's key tool writes it."""
    body = "".join(text.split())
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        return None


def _private_key(name: str, path: str) -> Secret:
    text = _read_file(name, path)
    register_secret(text)
    problem = f"{name} must hold an unencrypted RSA private key, PEM or bare base64 ({path!r})"
    try:
        if "-----BEGIN" in text:
            key = serialization.load_pem_private_key(text.encode(), password=None)
        else:
            der = _der_from_text(text)
            if der is None:
                raise ConfigError(problem)
            key = serialization.load_der_private_key(der, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ConfigError(problem) from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ConfigError(f"{name} holds a key that is not RSA ({path!r})")
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")
    register_secret(pem)
    return Secret(pem)


def _public_key(name: str, path: str) -> str:
    text = _read_file(name, path)
    problem = f"{name} must hold an RSA public key, PEM or bare base64 ({path!r})"
    try:
        if "-----BEGIN" in text:
            key = serialization.load_pem_public_key(text.encode())
        else:
            der = _der_from_text(text)
            if der is None:
                raise ConfigError(problem)
            key = serialization.load_der_public_key(der)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ConfigError(problem) from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise ConfigError(f"{name} holds a key that is not RSA ({path!r})")
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


def _register_url_password(url: str) -> None:
    try:
        password = urlsplit(url).password
    except ValueError:
        return
    if password:
        register_secret(password)


# --------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read and validate every setting from `environ` (default: `os.environ`).

    Raises `ConfigError` with a one-line message naming the first bad variable.
    """
    env = os.environ if environ is None else environ

    def get(name: str) -> str | None:
        raw = env.get(name)
        if raw is None or not raw.strip():
            return None
        return raw.strip()

    def text(name: str, default: str) -> str:
        value = get(name)
        return default if value is None else value

    amqp_url = _service_url("AMQP_URL", text("AMQP_URL", _DEFAULT_AMQP_URL), ("amqp", "amqps"))
    _register_url_password(amqp_url)
    database_url = _service_url(
        "DATABASE_URL", text("DATABASE_URL", _DEFAULT_DATABASE_URL), ("postgresql", "postgres")
    )
    _register_url_password(database_url)

    partner = text("ALIPAY_PARTNER", _DEFAULT_PARTNER)
    if not _PARTNER.fullmatch(partner):
        raise ConfigError(
            f"ALIPAY_PARTNER must be 16 digits starting with 2088 (got {_shown(partner)})"
        )
    sign_type = _choice(
        "ALIPAY_SIGN_TYPE", text("ALIPAY_SIGN_TYPE", "MD5"), ("MD5", "RSA"), upper=True
    )

    md5_inline, md5_file = get("ALIPAY_MD5_KEY"), get("ALIPAY_MD5_KEY_FILE")
    if md5_inline is not None and md5_file is not None:
        raise ConfigError("set only one of ALIPAY_MD5_KEY and ALIPAY_MD5_KEY_FILE, not both")
    md5_key: Secret | None = None
    if md5_inline is not None:
        md5_key = _md5_key("ALIPAY_MD5_KEY", md5_inline)
    elif md5_file is not None:
        content = _read_file("ALIPAY_MD5_KEY_FILE", md5_file).rstrip("\r\n")
        md5_key = _md5_key("ALIPAY_MD5_KEY_FILE", content)

    private_file = get("ALIPAY_PRIVATE_KEY_FILE")
    private_key = (
        _private_key("ALIPAY_PRIVATE_KEY_FILE", private_file) if private_file is not None else None
    )
    public_file = get("ALIPAY_PUBLIC_KEY_FILE")
    public_key = (
        _public_key("ALIPAY_PUBLIC_KEY_FILE", public_file) if public_file is not None else None
    )
    if sign_type == "MD5" and md5_key is None:
        raise ConfigError(
            "ALIPAY_MD5_KEY or ALIPAY_MD5_KEY_FILE is required when ALIPAY_SIGN_TYPE=MD5"
        )
    if sign_type == "RSA" and private_key is None:
        raise ConfigError("ALIPAY_PRIVATE_KEY_FILE is required when ALIPAY_SIGN_TYPE=RSA")
    if sign_type == "RSA" and public_key is None:
        raise ConfigError("ALIPAY_PUBLIC_KEY_FILE is required when ALIPAY_SIGN_TYPE=RSA")

    log_level = _choice(
        "LOG_LEVEL",
        text("LOG_LEVEL", "INFO"),
        ("DEBUG", "INFO", "WARNING", "WARN", "ERROR", "CRITICAL"),
        upper=True,
    )
    metrics_port = get("METRICS_PORT")
    return Settings(
        amqp_url=amqp_url,
        database_url=database_url,
        refund_exchange=_exchange("REFUND_EXCHANGE", text("REFUND_EXCHANGE", "refunds")),
        gateway_url=_http_url(
            "ALIPAY_GATEWAY_URL", text("ALIPAY_GATEWAY_URL", _DEFAULT_GATEWAY_URL)
        ),
        partner=partner,
        sign_type=sign_type,
        md5_key=md5_key,
        private_key_pem=private_key,
        alipay_public_key_pem=public_key,
        input_charset=_choice(
            "ALIPAY_INPUT_CHARSET", text("ALIPAY_INPUT_CHARSET", "utf-8"), ("utf-8", "gbk")
        ),
        notify_url=_http_url(
            "ALIPAY_NOTIFY_URL",
            text("ALIPAY_NOTIFY_URL", _DEFAULT_NOTIFY_URL),
            max_length=_MAX_NOTIFY_URL,
        ),
        dback_notify_url=_http_url(
            "ALIPAY_DBACK_NOTIFY_URL",
            text("ALIPAY_DBACK_NOTIFY_URL", _DEFAULT_DBACK_NOTIFY_URL),
            max_length=_MAX_NOTIFY_URL,
        ),
        batch_max_items=_int("BATCH_MAX_ITEMS", text("BATCH_MAX_ITEMS", "1000"), 1, 1000),
        batch_max_wait_seconds=_float(
            "BATCH_MAX_WAIT_SECONDS", text("BATCH_MAX_WAIT_SECONDS", "2.0"), 3600
        ),
        notify_bind=_bind("NOTIFY_BIND", text("NOTIFY_BIND", _DEFAULT_NOTIFY_BIND)),
        gateway_connect_timeout=_float(
            "GATEWAY_CONNECT_TIMEOUT", text("GATEWAY_CONNECT_TIMEOUT", "5.0"), 300
        ),
        gateway_read_timeout=_float(
            "GATEWAY_READ_TIMEOUT", text("GATEWAY_READ_TIMEOUT", "30.0"), 600
        ),
        notify_max_body_bytes=_int(
            "NOTIFY_MAX_BODY_BYTES",
            text("NOTIFY_MAX_BODY_BYTES", "1048576"),
            1024,
            64 * 1024 * 1024,
        ),
        log_level="WARNING" if log_level == "WARN" else log_level,
        log_format=_choice("LOG_FORMAT", text("LOG_FORMAT", "auto"), ("auto", "json", "console")),
        intake_prefetch=_int("INTAKE_PREFETCH", text("INTAKE_PREFETCH", "500"), 1, 65535),
        intake_queue_type=_choice(
            "INTAKE_QUEUE_TYPE", text("INTAKE_QUEUE_TYPE", "quorum"), ("quorum", "classic")
        ),
        intake_delivery_limit=_int(
            "INTAKE_DELIVERY_LIMIT", text("INTAKE_DELIVERY_LIMIT", "5"), 1, 1000
        ),
        metrics_port=None if metrics_port is None else _int("METRICS_PORT", metrics_port, 1, 65535),
        clock_offset_file=get("CLOCK_OFFSET_FILE"),
        reconcile_after_seconds=_float(
            "RECONCILE_AFTER_SECONDS", text("RECONCILE_AFTER_SECONDS", "600"), 7 * 86400
        ),
        reconcile_release_after_seconds=_float(
            "RECONCILE_RELEASE_AFTER_SECONDS",
            text("RECONCILE_RELEASE_AFTER_SECONDS", "86400"),
            30 * 86400,
        ),
    )


@functools.cache
def get_settings() -> Settings:
    """The process's settings, loaded from `os.environ` on first use and then kept."""
    return load_settings()


_P = ParamSpec("_P")
_R = TypeVar("_R")


def exit_on_config_error(fn: Callable[_P, _R]) -> Callable[_P, _R]:
    """Wrap `fn` so a `ConfigError` ends the process with status 78 and one line on stderr.

    The line is ``refund-worker: configuration error: <message>``; no traceback,
    since the message already names the variable to fix.
    """

    @functools.wraps(fn)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return fn(*args, **kwargs)
        except ConfigError as exc:
            message = " ".join(str(exc).split())
            print(f"refund-worker: configuration error: {message}", file=sys.stderr, flush=True)
            raise SystemExit(EX_CONFIG) from None

    return wrapper


def load_or_exit() -> Settings:
    """`get_settings()`, or exit with status 78 and one line on stderr if a setting is bad."""
    return exit_on_config_error(get_settings)()
