"""Settings: one frozen object read from the environment once per process.

`Settings` is the table of every setting: each field declares, once, its default, the
variable(s) it is read from and the parser that checks the variable's text
(`worker/config/values.py`, `worker/config/secrets.py`). `load_settings` reads every
variable of the table at start, so a bad value stops the process with one line naming
the variable instead of failing later in the middle of a batch.

Rules that apply to every variable:

* an unset variable and one set to an empty or blank string are the same:
  the default applies (orchestrators often render unset values as ``""``);
  a value is read without its surrounding whitespace;
* defaults point at local services and at the local sandbox gateway, so the
  demo runs with no configuration; secrets (the MD5 key, the RSA private key)
  never have a default;
* error messages name the variable and what is wrong; they show the offending
  value for ordinary settings (with any password in a URL masked) and never for
  a secret; when several are wrong, the first in the table's order is named, then
  the rules across variables (`_check_sign_type`) apply;
* every secret that is loaded is registered with the log redactor
  (`worker.observability.redaction.register_secret`).

`CLOCK_OFFSET_FILE` is for tests only and stays unset in production: the path
of a file holding a number of seconds that `worker.entrypoints.runtime`'s clock adds to the
system time (re-read at most once a second), so the fault-injection suite can
move every worker process across a Beijing midnight without waiting for one.
A missing file means no offset.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import Field, dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any, Final, Literal, ParamSpec, TypeVar

from worker.config import secrets, values
from worker.config.secrets import Secret
from worker.config.values import Parser
from worker.domain.errors import ConfigError

if TYPE_CHECKING:
    from worker.domain.merchants import Merchants
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

# Hosts a console may listen on without TLS in front and without a key file.
LOOPBACK_HOSTS: Final = frozenset({"127.0.0.1", "::1", "localhost"})

# Alipay caps notify_url and dback_notify_url at 200 characters (String(200)).
_MAX_NOTIFY_URL: Final = 200
# The OpenAPI gateway takes a notify_url of up to 256 characters (docs/openapi.md).
_MAX_OPENAPI_NOTIFY_URL: Final = 256

_T = TypeVar("_T")
# How `describe` shows a value: as it is, as a URL with its password masked, or only
# whether it is set (secrets and keys).
_Shown = Literal["value", "url", "set"]


def _env(default: _T, *sources: tuple[str, Parser[_T]], shown: _Shown = "value") -> _T:
    """A field of the table: its default, then (variable, parser) for each variable it is
    read from. A field read from several variables takes at most one of them."""
    metadata = {"sources": sources, "shown": shown}
    return field(default=default, metadata=metadata)


@dataclass(frozen=True, slots=True)
class Settings:
    """Every setting of the worker, validated. Build it with `load_settings`.

    The field defaults are the no-configuration demo values; constructing
    `Settings(...)` directly skips validation and is meant for tests
    (`dataclasses.replace(settings, batch_max_items=3)`).
    """

    amqp_url: str = _env(
        "amqp://guest:guest@127.0.0.1:5672/%2F",
        ("AMQP_URL", secrets.service_url("amqp", "amqps")),
        shown="url",
    )
    database_url: str = _env(
        "postgresql://postgres@127.0.0.1:5432/postgres",
        ("DATABASE_URL", secrets.service_url("postgresql", "postgres")),
        shown="url",
    )
    refund_exchange: str = _env("refunds", ("REFUND_EXCHANGE", values.exchange))
    gateway_url: str = _env(
        "http://127.0.0.1:8090/gateway.do", ("ALIPAY_GATEWAY_URL", values.http_url())
    )
    partner: str = _env("2088000000000001", ("ALIPAY_PARTNER", values.partner))
    sign_type: str = _env("MD5", ("ALIPAY_SIGN_TYPE", values.choice("MD5", "RSA", upper=True)))
    md5_key: Secret | None = _env(  # noqa: RUF009 -- _env returns a dataclasses.field
        None,
        ("ALIPAY_MD5_KEY", secrets.md5_key),
        ("ALIPAY_MD5_KEY_FILE", secrets.md5_key_file),
        shown="set",
    )
    private_key_pem: Secret | None = _env(  # noqa: RUF009 -- as above
        None, ("ALIPAY_PRIVATE_KEY_FILE", secrets.private_key_file), shown="set"
    )
    alipay_public_key_pem: str | None = _env(
        None, ("ALIPAY_PUBLIC_KEY_FILE", secrets.public_key_file), shown="set"
    )
    input_charset: str = _env("utf-8", ("ALIPAY_INPUT_CHARSET", values.choice("utf-8", "gbk")))
    notify_url: str = _env(
        "http://127.0.0.1:8080/alipay/notify",
        ("ALIPAY_NOTIFY_URL", values.http_url(max_length=_MAX_NOTIFY_URL)),
    )
    dback_notify_url: str = _env(
        "http://127.0.0.1:8080/alipay/dback-notify",
        ("ALIPAY_DBACK_NOTIFY_URL", values.http_url(max_length=_MAX_NOTIFY_URL)),
    )
    refund_service: str = _env("nopwd", ("ALIPAY_REFUND_SERVICE", values.choice("nopwd", "pwd")))
    seller_user_id: str | None = _env(None, ("ALIPAY_SELLER_USER_ID", values.partner))
    seller_email: str | None = _env(None, ("ALIPAY_SELLER_EMAIL", values.seller_email))
    batch_max_items: int = _env(1000, ("BATCH_MAX_ITEMS", values.whole(1, 1000)))
    batch_max_wait_seconds: float = _env(2.0, ("BATCH_MAX_WAIT_SECONDS", values.seconds(3600)))
    notify_bind: str = _env("127.0.0.1:8080", ("NOTIFY_BIND", values.bind))
    gateway_connect_timeout: float = _env(5.0, ("GATEWAY_CONNECT_TIMEOUT", values.seconds(300)))
    gateway_read_timeout: float = _env(30.0, ("GATEWAY_READ_TIMEOUT", values.seconds(600)))
    notify_max_body_bytes: int = _env(
        1_048_576, ("NOTIFY_MAX_BODY_BYTES", values.whole(1024, 64 * 1024 * 1024))
    )
    log_level: str = _env(
        "INFO",
        (
            "LOG_LEVEL",
            values.choice(
                "DEBUG",
                "INFO",
                "WARNING",
                "WARN",
                "ERROR",
                "CRITICAL",
                upper=True,
                aliases={"WARN": "WARNING"},
            ),
        ),
    )
    log_format: str = _env("auto", ("LOG_FORMAT", values.choice("auto", "json", "console")))
    intake_prefetch: int = _env(500, ("INTAKE_PREFETCH", values.whole(1, 65535)))
    intake_queue_type: str = _env(
        "quorum", ("INTAKE_QUEUE_TYPE", values.choice("quorum", "classic"))
    )
    intake_delivery_limit: int = _env(5, ("INTAKE_DELIVERY_LIMIT", values.whole(1, 1000)))
    metrics_port: int | None = _env(None, ("METRICS_PORT", values.whole(1, 65535)))
    clock_offset_file: str | None = _env(None, ("CLOCK_OFFSET_FILE", values.text))
    reconcile_after_seconds: float = _env(
        600.0, ("RECONCILE_AFTER_SECONDS", values.seconds(7 * 86400))
    )
    reconcile_release_after_seconds: float = _env(
        86400.0, ("RECONCILE_RELEASE_AFTER_SECONDS", values.seconds(30 * 86400))
    )
    merchants_file: str | None = _env(None, ("ALIPAY_MERCHANTS_FILE", values.text))
    # Final refunds completed longer ago than this move to the archive tables (migration
    # 0009, worker/services/archiver.py); at least 30 days, so a mistyped value cannot
    # empty the hot ledger of what is still being reconciled.
    ledger_retention_days: int = _env(400, ("LEDGER_RETENTION_DAYS", values.whole(30, 36500)))
    # The OpenAPI channels `trade` and `coupon` (docs/openapi.md): the default merchant's
    # application, when it has one, and where and how fast every application calls.
    app_id: str | None = _env(None, ("ALIPAY_APP_ID", values.app_id))
    app_private_key_pem: Secret | None = _env(  # noqa: RUF009 -- as above
        None, ("ALIPAY_APP_PRIVATE_KEY_FILE", secrets.private_key_file), shown="set"
    )
    app_public_key_pem: str | None = _env(
        None, ("ALIPAY_APP_PUBLIC_KEY_FILE", secrets.public_key_file), shown="set"
    )
    openapi_gateway_url: str = _env(
        "http://127.0.0.1:8090/openapi/gateway.do",
        ("ALIPAY_OPENAPI_GATEWAY_URL", values.http_url()),
    )
    openapi_notify_url: str = _env(
        "http://127.0.0.1:8080/alipay/openapi-notify",
        ("ALIPAY_OPENAPI_NOTIFY_URL", values.http_url(max_length=_MAX_OPENAPI_NOTIFY_URL)),
    )
    openapi_max_in_flight: int = _env(8, ("OPENAPI_MAX_IN_FLIGHT", values.whole(1, 256)))
    # The operator console (`refund-worker console`, worker/entrypoints/console).
    console_bind: str = _env("127.0.0.1:8091", ("CONSOLE_BIND", values.bind))
    console_secret_key: Secret | None = _env(  # noqa: RUF009 -- as above
        None, ("CONSOLE_SECRET_KEY_FILE", secrets.session_key_file), shown="set"
    )
    console_secure_cookies: str = _env(
        "auto", ("CONSOLE_SECURE_COOKIES", values.choice("auto", "true", "false"))
    )
    console_workers: int = _env(2, ("CONSOLE_WORKERS", values.whole(1, 32)))
    # Not a variable: the merchants, read from `merchants_file` by `load_settings`.
    merchant_book: Merchants | None = _env(None)  # noqa: RUF009 -- as above

    @property
    def notify_host(self) -> str:
        """Host part of `notify_bind`, without the brackets of an IPv6 address."""
        return values.split_bind(self.notify_bind)[0]

    @property
    def notify_port(self) -> int:
        """Port part of `notify_bind`."""
        return values.split_bind(self.notify_bind)[1]

    @property
    def console_host(self) -> str:
        """Host part of `console_bind`."""
        return values.split_bind(self.console_bind)[0]

    @property
    def console_on_loopback(self) -> bool:
        """Whether the console listens on this machine only (127.0.0.1, ::1, localhost)."""
        return self.console_host in LOOPBACK_HOSTS

    @property
    def console_cookies_secure(self) -> bool:
        """Session cookies marked `Secure`: always, except on loopback unless forced."""
        if self.console_secure_cookies == "auto":
            return not self.console_on_loopback
        return self.console_secure_cookies == "true"

    def merchants(self) -> Merchants:
        """Every merchant served: the merchants file's, or the one of the single variables."""
        if self.merchant_book is not None:
            return self.merchant_book
        from worker.config.merchants import single_merchant

        return single_merchant(self)

    def merchant(self) -> Merchant:
        """The default merchant's identity, as the mapi protocol functions sign with it."""
        return self.merchants().default.gateway

    def describe(self) -> dict[str, str]:
        """Every setting as text for a startup log line.

        Secrets and keys show as ``[set]`` or ``[unset]``; a password inside a
        URL shows as ``***``.
        """
        out: dict[str, str] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            shown = f.metadata["shown"]
            if f.name == "merchant_book":
                out[f.name] = str(self.merchants())
            elif isinstance(value, Secret) or shown == "set":
                out[f.name] = "[set]" if value is not None else "[unset]"
            elif value is None:
                out[f.name] = "[unset]"
            elif shown == "url":
                out[f.name] = values.mask_url(str(value))
            else:
                out[f.name] = str(value)
        return out


# --------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------


def _read(f: Field[Any], env: Mapping[str, str]) -> Any:
    """The field's value from its variable(s), or its default when none is set."""
    given = []
    for name, parse in f.metadata["sources"]:
        raw = env.get(name)
        if raw is not None and raw.strip():
            given.append((name, parse, raw.strip()))
    if not given:
        return f.default
    if len(given) > 1:
        names = [name for name, _, _ in given]
        raise ConfigError(f"set only one of {' and '.join(names)}, not both")
    name, parse, raw = given[0]
    return parse(name, raw)


def _check_sign_type(settings: Settings) -> None:
    """The keys the sign type needs: an MD5 key, or both RSA key files."""
    if settings.sign_type == "MD5" and settings.md5_key is None:
        raise ConfigError(
            "ALIPAY_MD5_KEY or ALIPAY_MD5_KEY_FILE is required when ALIPAY_SIGN_TYPE=MD5"
        )
    if settings.sign_type == "RSA" and settings.private_key_pem is None:
        raise ConfigError("ALIPAY_PRIVATE_KEY_FILE is required when ALIPAY_SIGN_TYPE=RSA")
    if settings.sign_type == "RSA" and settings.alipay_public_key_pem is None:
        raise ConfigError("ALIPAY_PUBLIC_KEY_FILE is required when ALIPAY_SIGN_TYPE=RSA")


def _check_app(settings: Settings) -> None:
    """An OpenAPI application needs its id and both key files, or none of them."""
    given = {
        "ALIPAY_APP_ID": settings.app_id is not None,
        "ALIPAY_APP_PRIVATE_KEY_FILE": settings.app_private_key_pem is not None,
        "ALIPAY_APP_PUBLIC_KEY_FILE": settings.app_public_key_pem is not None,
    }
    if any(given.values()) and not all(given.values()):
        missing = ", ".join(name for name, set_ in given.items() if not set_)
        raise ConfigError(f"{missing} required with the other OpenAPI application settings")


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read and validate every setting from `environ` (default: `os.environ`).

    Raises `ConfigError` with a one-line message naming the first bad variable.
    """
    env = os.environ if environ is None else environ
    settings = Settings(**{f.name: _read(f, env) for f in fields(Settings)})
    from worker.config.merchants import (
        MERCHANTS_FILE_VARIABLE,
        SINGLE_MERCHANT_VARIABLES,
        load_merchants_file,
        single_merchant,
    )

    if settings.merchants_file is None:
        _check_sign_type(settings)
        _check_app(settings)
        return replace(settings, merchant_book=single_merchant(settings))

    both = [name for name in SINGLE_MERCHANT_VARIABLES if (env.get(name) or "").strip()]
    if both:
        raise ConfigError(
            f"{', '.join(both)} must stay unset when {MERCHANTS_FILE_VARIABLE} is set:"
            " describe every merchant in the file"
        )
    book = load_merchants_file(
        settings.merchants_file,
        notify_url=settings.notify_url,
        dback_notify_url=settings.dback_notify_url,
    )
    return replace(settings, merchant_book=book)


@functools.cache
def get_settings() -> Settings:
    """The process's settings, loaded from `os.environ` on first use and then kept."""
    return load_settings()


_P = ParamSpec("_P")
_R = TypeVar("_R")


def exit_on_config_error(fn: Callable[_P, _R]) -> Callable[_P, _R]:
    """Wrap `fn` so a `ConfigError` ends the process with status 78 and one line on stderr.

    Each line is ``refund-worker: configuration error: <message>`` (one per problem,
    e.g. one per field of the merchants file); no traceback, since the message already
    names the variable to fix.
    """

    @functools.wraps(fn)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return fn(*args, **kwargs)
        except ConfigError as exc:
            for line in str(exc).splitlines() or [""]:
                message = " ".join(line.split())
                if message:
                    print(
                        f"refund-worker: configuration error: {message}",
                        file=sys.stderr,
                        flush=True,
                    )
            raise SystemExit(EX_CONFIG) from None

    return wrapper


def load_or_exit() -> Settings:
    """`get_settings()`, or exit with status 78 and one line on stderr if a setting is bad."""
    return exit_on_config_error(get_settings)()
