"""The merchants file (`ALIPAY_MERCHANTS_FILE`): several Alipay partners in one deployment.

A TOML (`.toml`) or YAML (`.yaml`, `.yml`) file::

    default = "shop-a"            # optional; else the first merchant listed
    [[merchants]]
    id = "shop-a"                 # optional alias for refund requests; default: the partner id
    partner = "2088000000000001"
    sign_type = "MD5"             # MD5 (default) or RSA
    charset = "utf-8"             # utf-8 (default) or gbk
    md5_key_file = "/run/secrets/shop-a/md5_key"

Every field of an entry is listed in `FIELDS`; `docs/runbook.md` ("Several merchants
in one deployment") explains them. The file is checked whole at start: every problem is
one line naming the merchant and the field, and all of them are reported at once. Keys
are read only from files (never inline) with the same loaders as the single-merchant
variables, so they are registered with the log redactor before they are checked and
never shown.

Without the file, the single-merchant variables (`ALIPAY_PARTNER`, `ALIPAY_SIGN_TYPE`,
`ALIPAY_MD5_KEY[_FILE]`, `ALIPAY_PRIVATE_KEY_FILE`, `ALIPAY_PUBLIC_KEY_FILE`,
`ALIPAY_INPUT_CHARSET`) describe the one merchant; with it, those variables must stay
unset (one description of the merchants, not two), while `ALIPAY_NOTIFY_URL` and
`ALIPAY_DBACK_NOTIFY_URL` stay the defaults of every entry.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

from worker.config import secrets, values
from worker.domain.errors import ConfigError
from worker.domain.merchants import DEFAULT_MAX_IN_FLIGHT, MerchantProfile, Merchants
from worker.mapi import Merchant

if TYPE_CHECKING:
    from worker.config.settings import Settings

__all__ = [
    "FIELDS",
    "MERCHANTS_FILE_VARIABLE",
    "SINGLE_MERCHANT_VARIABLES",
    "load_merchants_file",
    "single_merchant",
]

MERCHANTS_FILE_VARIABLE: Final = "ALIPAY_MERCHANTS_FILE"

# Variables that describe the one merchant when there is no merchants file.
SINGLE_MERCHANT_VARIABLES: Final = (
    "ALIPAY_PARTNER",
    "ALIPAY_SIGN_TYPE",
    "ALIPAY_MD5_KEY",
    "ALIPAY_MD5_KEY_FILE",
    "ALIPAY_PRIVATE_KEY_FILE",
    "ALIPAY_PUBLIC_KEY_FILE",
    "ALIPAY_INPUT_CHARSET",
    "ALIPAY_REFUND_SERVICE",
    "ALIPAY_SELLER_USER_ID",
    "ALIPAY_SELLER_EMAIL",
    "ALIPAY_APP_ID",
    "ALIPAY_APP_PRIVATE_KEY_FILE",
    "ALIPAY_APP_PUBLIC_KEY_FILE",
)

MAX_FILE_BYTES: Final = 1024 * 1024
_ID: Final = re.compile(r"[A-Za-z0-9_.:-]{1,64}", re.ASCII)
_MAX_NOTIFY_URL: Final = 200

_Check = Callable[[str, str], Any]

# Every field an entry may have, with the parser of its text (None: handled below).
FIELDS: Final[dict[str, _Check | None]] = {
    "id": None,
    "partner": values.partner,
    "sign_type": values.choice("MD5", "RSA", upper=True),
    "charset": values.choice("utf-8", "gbk"),
    "md5_key_file": secrets.md5_key_file,
    "private_key_file": secrets.private_key_file,
    "alipay_public_key_file": secrets.public_key_file,
    "service": values.choice("nopwd", "pwd"),
    "notify_url": values.http_url(max_length=_MAX_NOTIFY_URL),
    "dback_notify_url": values.http_url(max_length=_MAX_NOTIFY_URL),
    "seller_user_id": values.partner,
    "seller_email": values.seller_email,
    "max_in_flight": None,
    "app_id": values.app_id,
    "app_private_key_file": secrets.private_key_file,
    "app_public_key_file": secrets.public_key_file,
}


def single_merchant(settings: Settings) -> Merchants:
    """The one merchant the single-merchant variables describe (no validation: see settings)."""
    return Merchants(
        [
            MerchantProfile(
                id=settings.partner,
                gateway=Merchant(
                    partner=settings.partner,
                    charset=settings.input_charset,
                    sign_type=settings.sign_type,
                    md5_key=_reveal(settings.md5_key),
                    private_key_pem=_reveal(settings.private_key_pem),
                    notify_url=settings.notify_url,
                    dback_notify_url=settings.dback_notify_url,
                ),
                alipay_public_key_pem=settings.alipay_public_key_pem,
                service=settings.refund_service,
                seller_user_id=settings.seller_user_id,
                seller_email=settings.seller_email,
                app_id=settings.app_id,
                app_private_key_pem=_reveal(settings.app_private_key_pem),
                app_public_key_pem=settings.app_public_key_pem,
            )
        ]
    )


def load_merchants_file(
    path: str, *, notify_url: str | None, dback_notify_url: str | None
) -> Merchants:
    """Read and check the merchants file; ConfigError with one line per problem."""
    document = _read_document(path)
    problems: list[str] = []
    entries = document.get("merchants")
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{MERCHANTS_FILE_VARIABLE}: 'merchants' must be a non-empty list")
    unknown_top = sorted(set(document) - {"merchants", "default"})
    if unknown_top:
        problems.append(f"{MERCHANTS_FILE_VARIABLE}: unknown setting(s) {', '.join(unknown_top)}")
    profiles: list[MerchantProfile] = []
    for index, entry in enumerate(entries, start=1):
        profile = _profile(index, entry, notify_url, dback_notify_url, problems)
        if profile is not None:
            profiles.append(profile)
    default = document.get("default")
    if default is not None and not isinstance(default, str):
        problems.append(f"{MERCHANTS_FILE_VARIABLE}: 'default' must be a merchant id or partner")
        default = None
    if not problems:
        try:
            return Merchants(profiles, default=default)
        except ValueError as exc:
            problems.append(f"{MERCHANTS_FILE_VARIABLE}: {exc}")
    raise ConfigError("\n".join(problems))


def _read_document(path: str) -> dict[str, Any]:
    text = secrets.read_key_file(MERCHANTS_FILE_VARIABLE, path)
    if len(text.encode()) > MAX_FILE_BYTES:  # read_key_file bounds at 64 KiB already
        raise ConfigError(f"{MERCHANTS_FILE_VARIABLE} is too large ({path!r})")
    lowered = path.lower()
    try:
        if lowered.endswith((".yaml", ".yml")):
            import yaml

            document = yaml.safe_load(text)
        elif lowered.endswith(".toml"):
            document = tomllib.loads(text)
        else:
            raise ConfigError(f"{MERCHANTS_FILE_VARIABLE} must end in .toml, .yaml or .yml")
    except ConfigError:
        raise
    except Exception as exc:  # the parser's message names the line, never a key (keys are files)
        first = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise ConfigError(
            f"{MERCHANTS_FILE_VARIABLE} cannot be parsed ({path!r}): {first}"
        ) from None
    if not isinstance(document, dict):
        raise ConfigError(f"{MERCHANTS_FILE_VARIABLE} must hold a table of settings ({path!r})")
    return document


def _profile(
    index: int,
    entry: object,
    notify_url: str | None,
    dback_notify_url: str | None,
    problems: list[str],
) -> MerchantProfile | None:
    if not isinstance(entry, Mapping):
        problems.append(f"{MERCHANTS_FILE_VARIABLE}: merchant #{index} is not a table of fields")
        return None
    label = _label(index, entry)
    before = len(problems)

    def fail(message: str) -> None:
        problems.append(f"{MERCHANTS_FILE_VARIABLE}: {label}: {message}")

    for name in sorted(set(entry) - set(FIELDS)):
        fail(f"unknown field {str(name)[:40]!r}")
    parsed: dict[str, Any] = {}
    for name, check in FIELDS.items():
        raw = entry.get(name)
        if raw is None or check is None:
            continue
        if not isinstance(raw, str) or not raw.strip():
            fail(f"{name} must be a non-empty string")
            continue
        try:
            parsed[name] = check(name, raw.strip())
        except ConfigError as exc:
            fail(str(exc))
    if "partner" not in parsed and entry.get("partner") is None:
        fail("partner is required")
    alias = entry.get("id")
    if alias is not None and (not isinstance(alias, str) or not _ID.fullmatch(alias)):
        fail("id must be 1-64 letters, digits or _ . : -")
    max_in_flight = entry.get("max_in_flight", DEFAULT_MAX_IN_FLIGHT)
    if isinstance(max_in_flight, bool) or not isinstance(max_in_flight, int):
        fail("max_in_flight must be a whole number")
    elif not 1 <= max_in_flight <= 64:
        fail(f"max_in_flight must be between 1 and 64 (got {max_in_flight})")
    sign_type = parsed.get("sign_type", "MD5")
    _check_keys(sign_type, entry, parsed, fail)
    if parsed.get("service") == "pwd" and not (parsed.get("notify_url") or notify_url):
        fail("notify_url is required when service = 'pwd'")
    if len(problems) > before:
        return None
    partner = parsed["partner"]
    md5 = parsed.get("md5_key_file")
    rsa = parsed.get("private_key_file")
    return MerchantProfile(
        id=alias if isinstance(alias, str) else partner,
        gateway=Merchant(
            partner=partner,
            charset=parsed.get("charset", "utf-8"),
            sign_type=sign_type,
            md5_key=_reveal(md5),
            private_key_pem=_reveal(rsa),
            notify_url=parsed.get("notify_url", notify_url),
            dback_notify_url=parsed.get("dback_notify_url", dback_notify_url),
        ),
        alipay_public_key_pem=parsed.get("alipay_public_key_file"),
        service=parsed.get("service", "nopwd"),
        seller_user_id=parsed.get("seller_user_id"),
        seller_email=parsed.get("seller_email"),
        max_in_flight=int(max_in_flight),
        app_id=parsed.get("app_id"),
        app_private_key_pem=_reveal(parsed.get("app_private_key_file")),
        app_public_key_pem=parsed.get("app_public_key_file"),
    )


def _check_keys(
    sign_type: str, entry: Mapping[str, Any], parsed: Mapping[str, Any], fail: Callable[[str], None]
) -> None:
    """The keys the sign type needs (a field that failed to load was reported already)."""
    needed = (
        ("md5_key_file",) if sign_type == "MD5" else ("private_key_file", "alipay_public_key_file")
    )
    for name in needed:
        if name not in parsed and entry.get(name) is None:
            fail(f"{name} is required when sign_type = {sign_type!r}")
    app_key = "app_private_key_file" in parsed or entry.get("app_private_key_file") is not None
    if ("app_id" in parsed) != app_key:
        fail("app_id and app_private_key_file go together (OpenAPI)")
    app_public = "app_public_key_file" in parsed or entry.get("app_public_key_file") is not None
    if "app_id" in parsed and not app_public:
        fail("app_public_key_file (Alipay's public key for the app) is required with app_id")


def _label(index: int, entry: Mapping[str, Any]) -> str:
    for key in ("id", "partner"):
        value = entry.get(key)
        if isinstance(value, str) and _ID.fullmatch(value):
            return f"merchant {value!r}"
    return f"merchant #{index}"


def _reveal(secret: secrets.Secret | None) -> str | None:
    return None if secret is None else secret.reveal()
