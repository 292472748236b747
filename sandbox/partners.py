"""The partners file (`refund-worker sandbox --partners-file PATH`): several partners, one sandbox.

A TOML file with one `[[partners]]` table per partner:

    [[partners]]
    partner = "2088000000000001"
    md5_key_file = "/path/md5.key"              # the MD5 key, one line
    merchant_public_key_file = "/path/pub.pem"  # the merchant's RSA public key (PEM)

    [[partners]]
    partner = "2088000000000002"
    merchant_public_key_file = "b_pub.pem"
    seller_email = "shop-b@example.com"         # optional, for the password service
    payment_password = "b-pay-654321"           # optional, for the password service

Fields of an entry: `partner` (required: `2088` + 12 digits, each id once),
and at least one key: `md5_key_file` or `md5_key` (the key inline, for
tests; never shown), and/or `merchant_public_key_file`. Optional, for the
password refund service (`sandbox.cashier`): `seller_email`, the login of the
partner's seller account (default `seller-<partner>@sandbox.test`; 1-100
printable ASCII characters), and `payment_password`, the password its cashier
page wants (default: the sandbox's `--payment-password`; never shown).
For the OpenAPI gateway (`sandbox.openapi`), optional and together:
`app_id`, the partner's OpenAPI app (8-32 digits, each app once), and
`app_public_key_file`, the app's RSA public key (PEM) verifying its requests.
Relative paths are relative to the directory of the partners file. Nothing
else is allowed, at the top level or in an entry.

Every problem is one `ConfigError` line naming the file, the entry (by its
partner id, else by its position) and the field; it never holds a key.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

from sandbox.config import PartnerConfig
from worker.domain.errors import ConfigError
from worker.mapi.keys import KeyFormatError, load_public_key

__all__ = ["ENTRY_FIELDS", "load_partners_file", "md5_key_problem", "parse_partners"]

ENTRY_FIELDS: Final = (
    "partner",
    "md5_key",
    "md5_key_file",
    "merchant_public_key_file",
    "seller_email",
    "payment_password",
    "app_id",
    "app_public_key_file",
)

_Fail = Callable[[str, str], ConfigError]


def md5_key_problem(key: str) -> str | None:
    """Why `key` cannot be an MD5 key (the worker's rule: printable ASCII, no spaces), or None."""
    if not key or not all("!" <= ch <= "~" for ch in key):
        return "must be printable ASCII without spaces (value not shown)"
    return None


def load_partners_file(path: Path) -> tuple[PartnerConfig, ...]:
    """The partners `path` describes, in file order (ConfigError: one line, see the module doc)."""
    where = f"--partners-file {path}"
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{where}: cannot read the file ({type(exc).__name__})") from None
    except tomllib.TOMLDecodeError as exc:
        # The parser's message names a position; a character it quotes could be a key's.
        problem = re.sub(r"\s*'[^']*'", "", str(exc))
        raise ConfigError(f"{where}: not valid TOML ({problem})") from None
    return parse_partners(data, base_dir=path.parent, where=where)


def parse_partners(
    data: Mapping[str, Any], *, base_dir: Path, where: str = "--partners-file"
) -> tuple[PartnerConfig, ...]:
    """The partners of an already parsed partners file (see the module docstring)."""
    extra = sorted(set(data) - {"partners"})
    if extra:
        raise ConfigError(f"{where}: unknown top-level key {extra[0][:40]!r} (only [[partners]])")
    entries = data.get("partners")
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{where}: no [[partners]] entry")
    partners: list[PartnerConfig] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries, start=1):
        partner = _entry(entry, index, base_dir=base_dir, where=where)
        if partner.partner in seen:
            raise ConfigError(f"{where}: partner {partner.partner}: partner: given more than once")
        seen.add(partner.partner)
        partners.append(partner)
    return tuple(partners)


def _entry(entry: object, index: int, *, base_dir: Path, where: str) -> PartnerConfig:
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: entry {index}: not a [[partners]] table")
    partner_id = entry.get("partner")
    valid_id = isinstance(partner_id, str) and _valid_partner(partner_id)
    name = f"partner {partner_id}" if valid_id else f"entry {index}"

    def fail(field: str, problem: str) -> ConfigError:
        return ConfigError(f"{where}: {name}: {field}: {problem}")

    unknown = sorted(str(key) for key in set(entry) - set(ENTRY_FIELDS))
    if unknown:
        raise fail(unknown[0][:40], f"unknown field (allowed: {', '.join(ENTRY_FIELDS)})")
    if partner_id is None:
        raise fail("partner", "missing")
    if not valid_id:
        raise fail("partner", "must be 2088 followed by 12 digits")
    for field in ENTRY_FIELDS[1:]:
        if field in entry and (not isinstance(entry[field], str) or not entry[field]):
            raise fail(field, "must be a non-empty string")
    if "md5_key" in entry and "md5_key_file" in entry:
        raise fail("md5_key", "set only one of md5_key and md5_key_file, not both")
    md5_key: str | None = entry.get("md5_key")
    if "md5_key_file" in entry:
        md5_key = _read(base_dir, entry["md5_key_file"], fail, "md5_key_file").rstrip("\r\n")
    if md5_key is not None:
        problem = md5_key_problem(md5_key)
        if problem:
            raise fail("md5_key_file" if "md5_key_file" in entry else "md5_key", problem)
    public_key: bytes | None = None
    if "merchant_public_key_file" in entry:
        field = "merchant_public_key_file"
        public_key = _read(base_dir, entry[field], fail, field).encode("utf-8")
        try:
            load_public_key(public_key)
        except KeyFormatError:
            raise fail(field, "not an RSA public key (PEM)") from None
    if md5_key is None and public_key is None:
        raise fail(
            "md5_key_file", "no key: give md5_key_file (or md5_key) and/or merchant_public_key_file"
        )
    app_key: bytes | None = None
    if "app_public_key_file" in entry:
        field = "app_public_key_file"
        app_key = _read(base_dir, entry[field], fail, field).encode("utf-8")
        try:
            load_public_key(app_key)
        except KeyFormatError:
            raise fail(field, "not an RSA public key (PEM)") from None
    if ("app_id" in entry) != (app_key is not None):
        raise fail("app_id", "app_id and app_public_key_file go together: give both or neither")
    for field in ("seller_email", "payment_password", "app_id"):
        if field in entry:
            try:
                PartnerConfig(str(partner_id), **{field: entry[field]})
            except ConfigError as exc:
                raise fail(field, str(exc).removeprefix(f"{field} ")) from None
    return PartnerConfig(
        partner=str(partner_id),
        md5_key=md5_key,
        merchant_public_key=public_key,
        seller_email=entry.get("seller_email"),
        payment_password=entry.get("payment_password"),
        app_id=entry.get("app_id"),
        app_public_key=app_key,
    )


def _read(base_dir: Path, name: str, fail: _Fail, field: str) -> str:
    path = base_dir / Path(name).expanduser()
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise fail(field, f"cannot read {path} ({type(exc).__name__})") from None


def _valid_partner(text: str) -> bool:
    try:
        PartnerConfig(text)
    except ConfigError:
        return False
    return True
