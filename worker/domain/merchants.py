"""The merchants one deployment serves, and how a refund request names one.

A merchant is one Alipay partner (the 16-digit partner id) with its own keys, charset,
service and notify URLs. Everything the ledger stores belongs to a merchant by its
partner id; a refund request may name its merchant by the partner id or by the merchant's
`id` in the merchants file (README.md, "Several merchants"); a request that names
none belongs to the default merchant.

Pure: built by `worker/config/merchants.py` from the settings, read by the services.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from worker.mapi import Merchant
from worker.openapi import OpenApiApp

__all__ = ["DEFAULT_MAX_IN_FLIGHT", "MerchantProfile", "Merchants"]

# Batches of one merchant being sent to the gateway at once, unless its entry says otherwise.
DEFAULT_MAX_IN_FLIGHT = 4


@dataclass(frozen=True, slots=True)
class MerchantProfile:
    """One merchant as the pipeline sees it; its repr shows no key (`Merchant.__repr__`)."""

    id: str  # the alias refund requests may use; the partner id when none was given
    gateway: Merchant  # what the mapi protocol signs with
    alipay_public_key_pem: str | None = None  # verifies Alipay's RSA signatures
    service: str = "nopwd"
    seller_user_id: str | None = None
    seller_email: str | None = None
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
    app_id: str | None = None  # OpenAPI
    app_private_key_pem: str | None = field(default=None, repr=False)  # the app's RSA2 key
    app_public_key_pem: str | None = None  # Alipay's public key for the app

    @property
    def partner(self) -> str:
        return self.gateway.partner

    @property
    def charset(self) -> str:
        return self.gateway.charset

    @property
    def needs_approval(self) -> bool:
        """True on the password service: a person approves each batch in a browser."""
        return self.service == "pwd"

    @property
    def openapi_app(self) -> OpenApiApp | None:
        """The merchant's OpenAPI application (channels `trade` and `coupon`), if it has one."""
        if not (self.app_id and self.app_private_key_pem and self.app_public_key_pem):
            return None
        return OpenApiApp(self.app_id, self.app_private_key_pem, self.app_public_key_pem)

    def seller(self) -> tuple[str | None, str | None]:
        """(seller_user_id, seller_email) sent with a password-service request: the
        configured seller user id, else the configured seller email, else the partner
        (`seller_user_id` wins when both are set; only one is sent)."""
        if self.seller_user_id:
            return self.seller_user_id, None
        if self.seller_email:
            return None, self.seller_email
        return self.partner, None


class Merchants:
    """The merchants of a deployment: the default first, found by partner id or alias."""

    __slots__ = ("_by_name", "_by_partner", "_order")

    def __init__(self, profiles: Sequence[MerchantProfile], *, default: str | None = None) -> None:
        if not profiles:
            raise ValueError("at least one merchant is needed")
        by_partner: dict[str, MerchantProfile] = {}
        by_name: dict[str, MerchantProfile] = {}
        for profile in profiles:
            if profile.partner in by_partner:
                raise ValueError(f"partner {profile.partner} is listed twice")
            by_partner[profile.partner] = profile
            for name in {profile.id, profile.partner}:
                if by_name.get(name, profile) is not profile:
                    raise ValueError(f"merchant name {name!r} is used twice")
                by_name[name] = profile
        first = profiles[0] if default is None else by_name.get(default)
        if first is None:
            raise ValueError(f"default merchant {default!r} is not listed")
        self._order = (first, *(p for p in profiles if p is not first))
        self._by_partner = by_partner
        self._by_name = by_name

    @property
    def default(self) -> MerchantProfile:
        return self._order[0]

    def resolve(self, name: str | None) -> MerchantProfile | None:
        """The merchant a request names (partner id or alias; None: the default), or None."""
        if name is None:
            return self.default
        return self._by_name.get(name)

    def get(self, partner: str) -> MerchantProfile | None:
        """The merchant with this partner id, if the deployment still serves it."""
        return self._by_partner.get(partner)

    def __iter__(self) -> Iterator[MerchantProfile]:
        return iter(self._order)

    def __len__(self) -> int:
        return len(self._order)

    def __repr__(self) -> str:
        return f"Merchants({', '.join(f'{p.id}={p.partner}' for p in self._order)})"

    __str__ = __repr__
