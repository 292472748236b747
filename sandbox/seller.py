"""The seller of a password refund request, and whether it is the partner's own account.

Pure. `refund_fastpay_by_platform_pwd` names the seller whose payment
password confirms the batch by `seller_user_id` (16 digits starting with
`2088`) and/or `seller_email` (the account's login). One of the two is
required; when both are sent `seller_user_id` wins and the email is not
looked at. The seller must be the partner's own account: `seller_user_id`
equal to the partner id, or `seller_email` equal to the partner's seller
login (`sandbox.config.PartnerConfig.seller_login`, letter case aside).

Codes, Alipay's own (docs/mapi.md, "The password variant"):

* neither parameter -> ILLEGAL_ARGUMENT;
* a `seller_user_id` that is not 16 digits starting with 2088 -> ILLEGAL_USER;
* a seller that is not the partner's account -> SELLER_INFO_NOT_EXIST.

On the cashier page the operator types the account (`Seller.accepts`): its
login or its user id, whichever the request named.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from sandbox.config import PartnerConfig
from worker.mapi import is_valid_partner

__all__ = ["Seller", "SellerProblem", "seller_of"]


@dataclass(frozen=True)
class Seller:
    """The partner's seller account as a request named it."""

    user_id: str
    login: str
    named_by: Literal["seller_user_id", "seller_email"]

    @property
    def shown(self) -> str:
        """The account as the request named it (its user id, or its login)."""
        return self.user_id if self.named_by == "seller_user_id" else self.login

    def accepts(self, account: str) -> bool:
        """Whether `account` (as typed: surrounding spaces aside) is this seller's login or id."""
        typed = account.strip()
        return typed == self.user_id or typed.casefold() == self.login.casefold()


@dataclass(frozen=True)
class SellerProblem:
    """Why a request names no acceptable seller: Alipay's code and a readable reason."""

    code: str
    reason: str


def seller_of(params: Mapping[str, str], partner: PartnerConfig) -> Seller | SellerProblem:
    """The seller `params` name for `partner` (module docstring); empty values count as absent."""
    user_id = params.get("seller_user_id") or None
    email = params.get("seller_email") or None
    if user_id is None and email is None:
        return SellerProblem("ILLEGAL_ARGUMENT", "seller_user_id or seller_email is required")
    if user_id is not None:
        if not is_valid_partner(user_id):
            return SellerProblem(
                "ILLEGAL_USER", "seller_user_id is not 16 digits starting with 2088"
            )
        if user_id != partner.partner:
            return SellerProblem("SELLER_INFO_NOT_EXIST", "seller_user_id is not the partner's")
        return Seller(partner.partner, partner.seller_login, "seller_user_id")
    assert email is not None
    if email.casefold() != partner.seller_login.casefold():
        return SellerProblem(
            "SELLER_INFO_NOT_EXIST", "seller_email is not the partner's seller account"
        )
    return Seller(partner.partner, partner.seller_login, "seller_email")
