"""The redactor: the last structlog processor before a line is rendered.

It is the safety net behind the rule "never log a key, a signature or a signed payload":

* a value whose key names a secret (`sign`, `md5_key`, `password`,
  `authorization`, ... but not `sign_type`, `routing_key` or `refund_id`) is
  replaced by ``[redacted]``, at any depth of nested dicts;
* in every string (messages, nested values, rendered exceptions) a PEM block or
  a value given to `register_secret` is replaced by ``[redacted]``;
* values that are not JSON-native (objects, exceptions, bytes, decimals) become their
  text first, so a secret inside an object's repr is caught too (the renderer after
  it sees only strings, numbers, booleans, None, lists and dicts).

Settings register every secret they load (`worker/config/settings.py`), so a key
that leaks into an exception message or a library's log line is still caught.
`worker/observability/setup.py` puts `redact` right before the renderer in both
chains (the project's own events and other libraries' records).
"""

from __future__ import annotations

import datetime as _dt
import decimal
import enum
import functools
import re
import threading
import uuid
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any, Final

from structlog.typing import EventDict, WrappedLogger

__all__ = ["MIN_SECRET_LENGTH", "REDACTED", "is_secret_key", "redact", "register_secret"]

REDACTED: Final = "[redacted]"

# Values that describe a secret without being one (see `Settings.describe`):
# they may stand under a secret-looking key.
_SAFE_MARKERS: Final = frozenset({REDACTED, "[set]", "[unset]"})

# Shortest value `register_secret` accepts: shorter strings (a 5-character
# password such as the demo's "guest") would blank out ordinary words.
MIN_SECRET_LENGTH: Final = 6
# Lines of a multi-line secret (a PEM body) at least this long are registered
# on their own too, so a fragment of a key is caught as well.
_MIN_SECRET_LINE: Final = 16
# Nesting below this depth is rendered with repr() and scanned as one string.
_MAX_DEPTH: Final = 16

# --------------------------------------------------------------------------
# Which key names hold secrets
# --------------------------------------------------------------------------

# A key name containing one of these, in any spelling, is a secret.
_SECRET_SUBSTRINGS: Final = (
    "secret",
    "password",
    "passwd",
    "passphrase",
    "authorization",
    "credential",
    "privatekey",
    "apikey",
    "md5key",
)
# A key whose words include one of these is a secret (`private_key_pem`).
_SECRET_ANY_WORD: Final = frozenset({"private", "cookie"})
# A key whose *last* word is one of these is a secret: `sign` and `rsa_sign`
# are, `sign_type` is not; `access_token` is, `token_count` is not.
_SECRET_LAST_WORD: Final = frozenset(
    {"key", "sign", "signature", "sig", "token", "pwd", "pem", "auth"}
)
# `<qualifier>_key` names that identify something rather than hold a key.
# Any other `*_key` (`md5_key`, `api_key`, `sign_key`, an unknown one) is redacted.
_BENIGN_KEY_QUALIFIERS: Final = frozenset(
    {
        "routing",
        "idempotency",
        "dedup",
        "dedupe",
        "cache",
        "partition",
        "primary",
        "foreign",
        "unique",
        "sort",
        "lock",
        "advisory",
        "inbox",
        "outbox",
        "message",
        "group",
        "correlation",
        "lookup",
        "object",
        "public",
        "batch",
        "refund",
        "trade",
        "order",
        "event",
        "notify",
        "queue",
        "exchange",
        "row",
        "table",
        "column",
        "index",
        "shard",
        "bucket",
        "state",
        "metric",
        "label",
        "config",
        "setting",
    }
)
_CAMEL: Final = re.compile(r"([a-z0-9])([A-Z])")
_NON_WORD: Final = re.compile(r"[^a-z0-9]+")


@functools.lru_cache(maxsize=4096)
def is_secret_key(name: str) -> bool:
    """Whether a value logged under `name` must be hidden.

    Names are split into lowercase words (`privateKey`, `private-key` and
    `private_key` are the same). The rule is precise on purpose: ids, types and
    routing keys stay readable, anything that can hold a key, a password, a
    token or a signature does not.
    """
    words = [w for w in _NON_WORD.split(_CAMEL.sub(r"\1_\2", name).lower()) if w]
    if not words:
        return False
    joined = "".join(words)
    if any(part in joined for part in _SECRET_SUBSTRINGS):
        return True
    if _SECRET_ANY_WORD.intersection(words):
        return True
    last = words[-1]
    if last not in _SECRET_LAST_WORD:
        return False
    if last == "key" and len(words) > 1:
        return words[-2] not in _BENIGN_KEY_QUALIFIERS
    return True


# --------------------------------------------------------------------------
# Which values are secrets
# --------------------------------------------------------------------------

_PEM_BLOCK: Final = re.compile(
    r"-----BEGIN [A-Z0-9 ]+-----.*?(?:-----END [A-Z0-9 ]+-----|\Z)", re.DOTALL
)
_lock = threading.Lock()
_secrets: set[str] = set()
_secret_pattern: re.Pattern[str] | None = None


def register_secret(value: str) -> None:
    """Hide `value` wherever it appears in a logged string from now on.

    Values shorter than 6 characters are ignored: they would match ordinary
    text and no real key is that short. Each line of a multi-line secret of at
    least 16 characters is registered too.
    """
    global _secret_pattern
    if not isinstance(value, str) or len(value) < MIN_SECRET_LENGTH:
        return
    candidates = {value}
    if "\n" in value:
        candidates.update(
            line.strip() for line in value.splitlines() if len(line.strip()) >= _MIN_SECRET_LINE
        )
    with _lock:
        if candidates <= _secrets:
            return
        _secrets.update(candidates)
        ordered = sorted(_secrets, key=len, reverse=True)
        _secret_pattern = re.compile("|".join(re.escape(s) for s in ordered))


def _forget_secrets() -> None:
    """Drop every registered secret (for tests only)."""
    global _secret_pattern
    with _lock:
        _secrets.clear()
        _secret_pattern = None


def _scrub_text(text: str) -> str:
    if "-----BEGIN " in text:
        text = _PEM_BLOCK.sub(REDACTED, text)
    pattern = _secret_pattern
    if pattern is not None:
        text = pattern.sub(REDACTED, text)
    return text


def _plain(value: object) -> str:
    """The text a renderer would show for a value that is not JSON-native."""
    if isinstance(value, _dt.datetime | _dt.date | _dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal | uuid.UUID | PurePath):
        return str(value)
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, bytes | bytearray):
        return value.decode("utf-8", "backslashreplace")
    return repr(value)


def _scrub(key: object, value: Any, depth: int) -> Any:
    if isinstance(key, str) and is_secret_key(key):
        if value is None or (isinstance(value, str) and value in _SAFE_MARKERS):
            return value
        return REDACTED
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return _scrub_text(value)
    if depth >= _MAX_DEPTH:
        return _scrub_text(repr(value))
    if isinstance(value, Mapping):
        return {
            (_scrub_text(k) if isinstance(k, str) else k): _scrub(k, v, depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [_scrub(None, item, depth + 1) for item in value]
    return _scrub_text(_plain(value))


def _flat_texts(event_dict: EventDict) -> list[str] | None:
    """The string values of an event made only of strings, numbers, booleans and None under
    ordinary key names; None for any other event (it takes the full walk)."""
    texts: list[str] = []
    for key, value in event_dict.items():
        if not isinstance(key, str) or is_secret_key(key):
            return None
        if isinstance(value, str):
            texts.append(value)
        elif value is not None and not isinstance(value, bool | int | float):
            return None
    return texts


def redact(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """structlog processor: hide secrets by key name and by value (see the module doc).

    Values that are not JSON-native (objects, exceptions, bytes) are turned into
    their text first, so a secret inside an object's repr is caught too.

    Most events (a refund's `refund.received`) hold a few plain values under ordinary
    names: their strings are scanned together, in one pass, and the event is kept as
    it is when none holds a PEM block or a registered secret. A secret inside any one
    string is inside the joined text too, so the shortcut never lets one through; a
    match, or any other event, takes the value-by-value walk.
    """
    texts = _flat_texts(event_dict)
    if texts is not None:
        joined = "\n".join(texts)
        pattern = _secret_pattern
        if "-----BEGIN " not in joined and (pattern is None or pattern.search(joined) is None):
            return event_dict
    return {key: _scrub(key, value, 0) for key, value in event_dict.items()}
