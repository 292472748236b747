"""The sandbox's settings, validated once into a frozen object.

The sandbox serves one or more partners (merchants), each a `PartnerConfig`
with its own MD5 key and/or merchant RSA public key; `SandboxConfig.partners`
holds them in order, and the first is "the" partner (`SandboxConfig.partner`,
`md5_key`, `merchant_public_key`): the one journal entries written before
partners were recorded belong to, and the one `GET /_sandbox/info` shows at
its top level. Every request is checked against the partner it names
(`partner_config`).

Secrets (the MD5 keys, the payment passwords; the merchants' public keys are
not secret but travel the same way) are held here and handed to the code that
needs them; `__repr__` never shows an MD5 key or a password.

The password refund service (`sandbox.cashier`) needs two more things of a
partner: its seller account's login (`PartnerConfig.seller_login`: the
`seller_email` given, else `seller-<partner>@sandbox.test`; its user id is the
partner id) and the payment password typed on the cashier page
(`PartnerConfig.payment_password`, else the sandbox-wide
`SandboxConfig.payment_password`, default `sandbox-pay-123456`).

The OpenAPI gateway (`sandbox.openapi`) serves a partner's app when it has
one: `PartnerConfig.app_id` (8-32 digits, each app once) and
`app_public_key` (the app's RSA public key, PEM, verifying its requests).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from sandbox.faults import FaultSet
from worker.domain.errors import ConfigError

__all__ = [
    "DEFAULT_AUTO_TRADE_AMOUNT",
    "DEFAULT_BIND",
    "DEFAULT_NOTIFY_VERIFY_SECONDS",
    "DEFAULT_PARTNER",
    "DEFAULT_PAYMENT_PASSWORD",
    "REFUND_LIMIT_MODES",
    "PartnerConfig",
    "SandboxConfig",
    "check_notify_verify_seconds",
    "check_payment_password",
    "check_refund_limit_mode",
    "check_seller_email",
    "default_seller_email",
    "parse_bind",
]

DEFAULT_BIND = "127.0.0.1:8090"
DEFAULT_PARTNER = "2088000000000001"
DEFAULT_AUTO_TRADE_AMOUNT = Decimal("1000000.00")
DEFAULT_NOTIFY_VERIFY_SECONDS = 60.0
REFUND_LIMIT_MODES = ("refuse", "skip")
DEFAULT_PAYMENT_PASSWORD = "sandbox-pay-123456"
MAX_PAYMENT_PASSWORD_CHARS = 128
_MAX_VERIFY_SECONDS = 7 * 86400.0
_PARTNER = re.compile(r"2088[0-9]{12}", re.ASCII)
_LOGIN = re.compile(r"[\x21-\x7e]{1,100}", re.ASCII)
_APP_ID = re.compile(r"[0-9]{8,32}", re.ASCII)


def parse_bind(text: str) -> tuple[str, int]:
    """`host:port` -> (host, port); ConfigError when it is not one."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not host or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ConfigError(f"--bind {text!r} is not host:port")
    return host.strip("[]"), int(port_text)


def check_notify_verify_seconds(value: object) -> float:
    """A valid `notify_verify_seconds` (> 0, at most a week, real seconds); ConfigError else."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not 0 < value <= _MAX_VERIFY_SECONDS
    ):
        raise ConfigError("notify_verify_seconds must be > 0 and at most 604800 seconds")
    return float(value)


def check_refund_limit_mode(value: object) -> str:
    """`refuse` or `skip`; ConfigError else."""
    if value not in REFUND_LIMIT_MODES:
        raise ConfigError(f"refund_limit_mode must be one of {', '.join(REFUND_LIMIT_MODES)}")
    return str(value)


def check_payment_password(value: object) -> str:
    """A valid payment password (1-128 characters, none a control character); ConfigError else.

    The message never shows the value.
    """
    if (
        not isinstance(value, str)
        or not 0 < len(value) <= MAX_PAYMENT_PASSWORD_CHARS
        or not value.isprintable()
    ):
        raise ConfigError("payment_password must be 1-128 printable characters (value not shown)")
    return value


def check_seller_email(value: object) -> str:
    """A valid seller login (1-100 printable ASCII characters, no space); ConfigError else."""
    if not isinstance(value, str) or not _LOGIN.fullmatch(value):
        raise ConfigError("seller_email must be 1-100 printable ASCII characters without spaces")
    return value


def default_seller_email(partner: str) -> str:
    """The seller login of a partner whose entry gives none: `seller-<partner>@sandbox.test`."""
    return f"seller-{partner}@sandbox.test"


@dataclass(frozen=True)
class PartnerConfig:
    """One partner the sandbox serves: its id and the keys its requests are signed with.

    No key at all is allowed here (the gateway then refuses every signature,
    as it refuses a sign type without a key); `SandboxConfig` asks for one.
    `seller_email` and `payment_password` serve the password refund service
    (module docstring); None means the default.
    """

    partner: str
    md5_key: str | None = field(default=None, repr=False)
    merchant_public_key: bytes | None = field(default=None, repr=False)
    seller_email: str | None = None
    payment_password: str | None = field(default=None, repr=False)
    app_id: str | None = None
    app_public_key: bytes | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not _PARTNER.fullmatch(self.partner):
            raise ConfigError("partner must be 2088 followed by 12 digits")
        if self.app_id is not None and not _APP_ID.fullmatch(self.app_id):
            raise ConfigError("app_id must be 8 to 32 digits")
        if (self.app_id is None) != (self.app_public_key is None):
            raise ConfigError("app_id and app_public_key_file go together: give both or neither")
        if self.seller_email is not None:
            check_seller_email(self.seller_email)
        if self.payment_password is not None:
            check_payment_password(self.payment_password)

    @property
    def seller_login(self) -> str:
        """The login of the partner's own seller account (its user id is `partner`)."""
        return self.seller_email or default_seller_email(self.partner)

    @property
    def sign_types(self) -> tuple[str, ...]:
        """The sign types this partner's requests may use (`MD5`, `RSA`)."""
        return tuple(
            name for name, key in (("MD5", self.md5_key), ("RSA", self.merchant_public_key)) if key
        )


@dataclass(frozen=True)
class SandboxConfig:
    """Everything the sandbox needs to run (see `refund-worker sandbox --help`).

    `notify_verify_seconds`: how long after the latest delivery attempt of a
    notification its `notify_id` still verifies (real seconds, not scaled by
    the time factor; Alipay: about one minute). `refund_limit_mode`: what
    happens to the 100th refund of a trade: `refuse` (TRADE_STATUS_ERROR in
    result_details) or `skip` (neither refunded nor reported). Both can be
    changed at run time (`PUT /_sandbox/settings`), as can `payment_password`
    (the cashier's password of every partner that has none of its own).

    `partners`: the partners served, the first being the default one; when
    empty, the one partner `partner` / `md5_key` / `merchant_public_key`
    describe (the single-partner form) is served. After construction those
    three always read the first partner's values.
    """

    host: str
    port: int
    state_dir: Path
    partner: str = DEFAULT_PARTNER
    md5_key: str | None = field(default=None, repr=False)
    merchant_public_key: bytes | None = field(default=None, repr=False)
    partners: tuple[PartnerConfig, ...] = ()
    time_factor: float = 1.0
    process_delay: float = 1.0
    auto_trades: bool = True
    auto_trade_amount: Decimal = DEFAULT_AUTO_TRADE_AMOUNT
    seed: int | None = None
    faults: FaultSet = field(default_factory=FaultSet)
    threads: int = 32
    senders: int = 8
    notify_timeout: float = 10.0
    notify_verify_seconds: float = DEFAULT_NOTIFY_VERIFY_SECONDS
    refund_limit_mode: str = "refuse"
    payment_password: str = field(default=DEFAULT_PAYMENT_PASSWORD, repr=False)

    def __post_init__(self) -> None:
        if not self.partners:
            single = PartnerConfig(self.partner, self.md5_key, self.merchant_public_key)
            if not single.sign_types:
                raise ConfigError(
                    "no merchant key: give --md5-key / --md5-key-file (or ALIPAY_MD5_KEY / "
                    "ALIPAY_MD5_KEY_FILE) or --merchant-public-key-file"
                )
            object.__setattr__(self, "partners", (single,))
        seen: set[str] = set()
        apps: set[str] = set()
        for entry in self.partners:
            if entry.partner in seen:
                raise ConfigError(f"partner {entry.partner}: given more than once")
            if not entry.sign_types:
                raise ConfigError(f"partner {entry.partner}: no merchant key")
            if entry.app_id is not None and entry.app_id in apps:
                raise ConfigError(f"partner {entry.partner}: app_id {entry.app_id} is another's")
            seen.add(entry.partner)
            if entry.app_id is not None:
                apps.add(entry.app_id)
        first = self.partners[0]
        object.__setattr__(self, "partner", first.partner)
        object.__setattr__(self, "md5_key", first.md5_key)
        object.__setattr__(self, "merchant_public_key", first.merchant_public_key)
        if not (math.isfinite(self.time_factor) and 0 < self.time_factor <= 1000):
            raise ConfigError("--time-factor must be > 0 and <= 1000")
        if not (math.isfinite(self.process_delay) and 0 <= self.process_delay <= 86400):
            raise ConfigError("--process-delay must be between 0 and 86400 seconds")
        if not (self.auto_trade_amount > 0 and self.auto_trade_amount.as_tuple().exponent == -2):
            raise ConfigError("--auto-trade-amount must be > 0 with two decimals")
        if not 1 <= self.threads <= 1024:
            raise ConfigError("--threads must be between 1 and 1024")
        if not 1 <= self.senders <= 256:
            raise ConfigError("--senders must be between 1 and 256")
        if not (math.isfinite(self.notify_timeout) and 0 < self.notify_timeout <= 300):
            raise ConfigError("--notify-timeout must be > 0 and <= 300 seconds")
        check_notify_verify_seconds(self.notify_verify_seconds)
        check_refund_limit_mode(self.refund_limit_mode)
        check_payment_password(self.payment_password)

    def app_partner(self, app_id: str | None) -> PartnerConfig | None:
        """The partner whose OpenAPI app has that id, or None."""
        return next((p for p in self.partners if app_id and p.app_id == app_id), None)

    def partner_config(self, partner: str | None) -> PartnerConfig | None:
        """The served partner of that id, or None when the sandbox does not serve it."""
        return next((p for p in self.partners if p.partner == partner), None)

    @property
    def partner_ids(self) -> tuple[str, ...]:
        return tuple(p.partner for p in self.partners)

    @property
    def bind(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"
