"""Parsers of ordinary setting values: URLs, numbers, choices, names, host:port.

Each parser takes the variable's name (for the message) and its text, already stripped
and never blank (`worker/config/settings.py` treats a blank variable as unset), and
returns the value or raises `ConfigError` with one line naming the variable. Messages
show the offending value, quoted and bounded, with any password in a URL masked;
values that may be secrets are parsed in `worker/config/secrets.py` and never shown.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Final, TypeVar
from urllib.parse import SplitResult, urlsplit, urlunsplit

from worker.domain.errors import ConfigError

__all__ = [
    "Parser",
    "bind",
    "choice",
    "exchange",
    "http_url",
    "mask_url",
    "partner",
    "seconds",
    "service_url",
    "split_bind",
    "text",
    "whole",
]

_T = TypeVar("_T")
# (variable name, text) -> value
Parser = Callable[[str, str], _T]


def shown(value: str, limit: int = 80) -> str:
    """A non-secret value quoted for an error message, on one line, bounded."""
    quoted = repr(value)
    return quoted if len(quoted) <= limit else quoted[: limit - 4] + "...'"


def mask_url(url: str) -> str:
    """`url` with the password of its user part, if any, shown as ``***``."""
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


def text(_name: str, value: str) -> str:
    """Any text, as given (e.g. a path)."""
    return value


def _split_url(name: str, value: str) -> SplitResult:
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 -- raises ValueError for a bad port
    except ValueError:
        raise ConfigError(f"{name} is not a valid URL (got {shown(mask_url(value))})") from None
    return parts


def http_url(*, max_length: int | None = None) -> Parser[str]:
    """An absolute http(s) URL with a host and no query string or fragment."""

    def parse(name: str, value: str) -> str:
        parts = _split_url(name, value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"{name} must be an http:// or https:// URL (got {shown(value)})")
        if parts.query or parts.fragment or "?" in value or "#" in value:
            raise ConfigError(
                f"{name} must not have a query string or fragment (got {shown(value)})"
            )
        if any(ch.isspace() for ch in value):
            raise ConfigError(f"{name} must not contain whitespace (got {shown(value)})")
        if max_length is not None and len(value) > max_length:
            raise ConfigError(
                f"{name} must be at most {max_length} characters (got {len(value)} characters)"
            )
        return value

    return parse


def service_url(*schemes: str) -> Parser[str]:
    """A URL of one of `schemes` with a host (a broker, a database)."""

    def parse(name: str, value: str) -> str:
        parts = _split_url(name, value)
        if parts.scheme not in schemes or not parts.hostname:
            wanted = " or ".join(f"{s}://" for s in schemes)
            raise ConfigError(
                f"{name} must be a {wanted} URL with a host (got {shown(mask_url(value))})"
            )
        return value

    return parse


_INT: Final = re.compile(r"[+-]?[0-9]+")


def whole(low: int, high: int) -> Parser[int]:
    """A whole number in ASCII digits between `low` and `high`."""

    def parse(name: str, value: str) -> int:
        if not _INT.fullmatch(value):
            raise ConfigError(f"{name} must be a whole number (got {shown(value)})")
        number = int(value)
        if not low <= number <= high:
            raise ConfigError(f"{name} must be between {low} and {high} (got {number})")
        return number

    return parse


def seconds(high: float) -> Parser[float]:
    """A finite number of seconds greater than 0 and at most `high`."""

    def parse(name: str, value: str) -> float:
        try:
            number = float(value)
        except ValueError:
            raise ConfigError(f"{name} must be a number of seconds (got {shown(value)})") from None
        if not math.isfinite(number) or not 0 < number <= high:
            raise ConfigError(f"{name} must be greater than 0 and at most {high:g} (got {value})")
        return number

    return parse


def choice(
    *choices: str, upper: bool = False, aliases: dict[str, str] | None = None
) -> Parser[str]:
    """One of `choices`, in any case (returned upper or lower case); `aliases` rename one."""

    def parse(name: str, value: str) -> str:
        normal = value.upper() if upper else value.lower()
        if normal not in choices:
            raise ConfigError(f"{name} must be one of {', '.join(choices)} (got {shown(value)})")
        return (aliases or {}).get(normal, normal)

    return parse


_EXCHANGE: Final = re.compile(r"[A-Za-z0-9._:-]{1,200}")
_PARTNER: Final = re.compile(r"2088[0-9]{12}")
_BIND: Final = re.compile(
    r"(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9][A-Za-z0-9.-]*)):(?P<port>[0-9]{1,5})"
)


def exchange(name: str, value: str) -> str:
    """A RabbitMQ exchange name the worker may declare."""
    if not _EXCHANGE.fullmatch(value):
        raise ConfigError(
            f"{name} must be 1-200 characters of letters, digits and . _ - : (got {shown(value)})"
        )
    if value.startswith("amq."):
        raise ConfigError(f"{name} must not start with 'amq.', RabbitMQ reserves it")
    return value


def partner(name: str, value: str) -> str:
    """An Alipay partner id: 16 ASCII digits starting with 2088."""
    if not _PARTNER.fullmatch(value):
        raise ConfigError(f"{name} must be 16 digits starting with 2088 (got {shown(value)})")
    return value


_SELLER_EMAIL = re.compile(r"[\x21-\x7e]{1,100}", re.ASCII)


def seller_email(name: str, value: str) -> str:
    """The seller's Alipay login (an email or a phone number): 1-100 printable ASCII."""
    if not _SELLER_EMAIL.fullmatch(value):
        raise ConfigError(f"{name} must be 1-100 printable ASCII characters (got {shown(value)})")
    return value


def split_bind(value: str) -> tuple[str, int]:
    """Host (IPv6 without its brackets) and port of `host:port`; ValueError if malformed."""
    match = _BIND.fullmatch(value)
    if match is None:
        raise ValueError(value)
    return match["v6"] or match["host"], int(match["port"])


def bind(name: str, value: str) -> str:
    """`host:port` or `[v6]:port` to listen on."""
    try:
        _, port = split_bind(value)
    except ValueError:
        raise ConfigError(
            f"{name} must be host:port, e.g. 0.0.0.0:8080 or [::]:8080 (got {shown(value)})"
        ) from None
    if not 1 <= port <= 65535:
        raise ConfigError(f"{name} port must be between 1 and 65535 (got {port})")
    return value


_APP_ID = re.compile(r"[0-9]{8,32}", re.ASCII)


def app_id(name: str, value: str) -> str:
    """An OpenAPI application id: 8 to 32 digits."""
    if not _APP_ID.fullmatch(value):
        raise ConfigError(
            f"{name} must be an OpenAPI app id of 8 to 32 digits (got {shown(value)})"
        )
    return value
