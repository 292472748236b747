"""The gateway's error codes as data, and what the worker should do about each.

Sources: the official code table of the refund interface, the integration
guide and the general mapi gateway codes that public integrations list
(ILLEGAL_PARTNER_EXTERFACE, SYSTEM_ERROR, ...).

Kinds:

* BATCH_FIXABLE: the batch was refused as a whole and nothing was refunded;
  fix what is wrong and resubmit the items under a new batch_no.
  REFUND_DATE_ERROR and BATCH_NO_FORMAT_ERROR are about the batch's date
  (clock skew near Beijing midnight): the whole batch is renumbered later.
* CONFIGURATION: the merchant's setup is wrong (key, partner, contract,
  charset...). The batch was refused and nothing was refunded, but every other
  batch would fail the same way: stop submitting, alert, keep the batches.
* RETRY_LATER: try again later with the same batch_no. BATCH_REFUND_LOCK_ERROR
  (another batch of the partner is being processed) refuses the batch;
  SYSTEM_ERROR (an internal error) may or may not have recorded it, so the
  batch counts as maybe-sent (`worker.domain.policy`).
* DUPLICATE_BATCH: the gateway already has this batch_no. After a submission
  whose outcome was unknown it means "already accepted"; on a first attempt
  the number may still have been ours, and a query of it must tell.
* ITEM: a single refund is impossible (trade state, amount, balance...). In
  `result_details` it fails that item only; as a batch-level `F` it means one
  item spoilt the batch, which should be split to isolate it.

`classify` returns None for a code it does not know: callers must then treat
the outcome conservatively (never as "nothing was refunded").
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType


class CodeKind(enum.StrEnum):
    """What an error code means for the batch (see module docstring)."""

    BATCH_FIXABLE = "batch_fixable"
    CONFIGURATION = "configuration"
    RETRY_LATER = "retry_later"
    DUPLICATE_BATCH = "duplicate_batch"
    ITEM = "item"


@dataclass(frozen=True)
class ErrorCode:
    """One gateway error code, its kind and its meaning in English."""

    code: str
    kind: CodeKind
    meaning: str


_B = CodeKind.BATCH_FIXABLE
_C = CodeKind.CONFIGURATION
_R = CodeKind.RETRY_LATER
_D = CodeKind.DUPLICATE_BATCH
_I = CodeKind.ITEM

_TABLE: tuple[tuple[str, CodeKind, str], ...] = (
    # Merchant configuration: stop submitting.
    ("ILLEGAL_SIGN", _C, "signature is wrong (key, charset or signing string)"),
    ("ILLEGAL_DYN_MD5_KEY", _C, "dynamic key information is wrong"),
    ("ILLEGAL_ENCRYPT", _C, "encryption is wrong"),
    ("ILLEGAL_PARTNER", _C, "partner id is wrong"),
    ("ILLEGAL_SERVICE", _C, "service name is wrong or the parameters are missing"),
    ("ILLEGAL_SIGN_TYPE", _C, "sign_type is wrong"),
    ("ILLEGAL_CHARSET", _C, "_input_charset is not allowed"),
    ("ILLEGAL_ENCODING", _C, "the encoding is not supported"),
    ("ILLEGAL_USER", _C, "user id is wrong"),
    ("ILLEGAL_EXTERFACE", _C, "interface configuration is wrong"),
    ("ILLEGAL_PARTNER_EXTERFACE", _C, "the partner is not configured for this interface"),
    ("ILLEGAL_SECURITY_PROFILE", _C, "no key configuration matches the request"),
    ("ILLEGAL_AGENT", _C, "agent id is wrong"),
    ("ILLEGAL_CLIENT_IP", _C, "the client IP address may not use this service"),
    ("ILLEGAL_ACCESS_SWITCH_SYSTEM", _C, "the partner may not access this kind of system"),
    ("EXTERFACE_IS_CLOSED", _C, "the interface is closed"),
    ("HAS_NO_PRIVILEGE", _C, "no contract for this interface (nopwd refunds need one)"),
    ("PARTNER_NOT_SIGN_PROTOCOL", _C, "the platform partner has not signed the protocol"),
    ("SELLER_INFO_NOT_EXIST", _C, "seller information does not exist"),
    # The batch was refused as a whole: fix and resubmit under a new batch_no.
    ("ILLEGAL_ARGUMENT", _B, "a parameter or its value has the wrong format"),
    ("BATCH_NUM_EXCEED_LIMIT", _B, "more than 1000 items in the batch"),
    ("REFUND_DATE_ERROR", _B, "refund_date is wrong (not now, or not the batch_no date)"),
    ("BATCH_NUM_ERROR", _B, "batch_num has the wrong format"),
    ("BATCH_NUM_NOT_EQUAL_TOTAL", _B, "batch_num differs from the number of items"),
    ("SINGLE_DETAIL_DATA_EXCEED_LIMIT", _B, "an item of detail_data exceeds a limit"),
    ("DUBL_TRADE_NO_IN_SAME_BATCH", _B, "the same trade appears twice in the batch"),
    ("BATCH_NO_FORMAT_ERROR", _B, "batch_no has the wrong format"),
    ("DETAIL_DATA_FORMAT_ERROR", _B, "detail_data has the wrong format"),
    ("BATCH_MEMO_LENGTH_EXCEED_LIMIT", _B, "a refund reason is too long"),
    ("PWD_REFUND_NOT_ALLOW_ROYALTY", _B, "the password interface cannot refund royalties"),
    # Same batch_no, later.
    ("BATCH_REFUND_LOCK_ERROR", _R, "another batch of the partner is being processed"),
    ("SYSTEM_ERROR", _R, "Alipay system error; the batch may or may not be recorded"),
    # Already there.
    ("DUPLICATE_BATCH_NO", _D, "the batch_no was already used"),
    # One refund is impossible.
    ("TRADE_STATUS_ERROR", _I, "the trade's status does not allow a refund"),
    ("NOT_THIS_SELLER_TRADE", _I, "the trade is not the seller's"),
    ("NOT_THIS_PARTNERS_TRADE", _I, "the trade does not belong to this partner"),
    ("REFUND_AMOUNT_NOT_VALID", _I, "the refund amount is not valid"),
    ("TRADE_HAS_CLOSED", _I, "the trade is closed"),
    ("TRADE_HAS_FINISHED", _I, "the trade is finished and can no longer be refunded"),
    ("TRADE_NOT_EXIST", _I, "no such trade"),
    ("TRADE_NOT_EXISTS", _I, "no such trade (spelling seen in some gateways)"),
    ("SELLER_BALANCE_NOT_ENOUGH", _I, "the seller's balance is not enough"),
    ("TXN_RESULT_ACCOUNT_BALANCE_NOT_ENOUGH", _I, "the account balance is not enough"),
    ("TXN_RESULT_ACCOUNT_STATUS_NOT_VALID", _I, "the account status is not valid"),
    ("BUYER_ERROR", _I, "the buyer's Alipay account does not allow the refund"),
    ("REASON_TRADE_REFUND_FEE_ERR", _I, "the refund amount is wrong"),
    ("REASON_HAS_REFUND_FEE_NOT_MATCH", _I, "the amount already refunded does not match"),
    (
        "REASON_REFUND_AMOUNT_LESS_THAN_COUPON_FEE",
        _I,
        "a red-envelope payment cannot be partly refunded",
    ),
    ("NANHANG_REFUND_CHARGE_AMOUNT_ERROR", _I, "the ticket face value refund amount is not valid"),
    ("TRADE_PRODUCT_TYPE_NOT_ALLOW_REFUND", _I, "the trade's product type does not allow a refund"),
    ("RESULT_FACE_AMOUNT_NOT_VALID", _I, "the refunded face value exceeds the paid face value"),
    ("REFUND_CHARGE_FEE_ERROR", _I, "the refunded fee amount is not valid"),
    ("REASON_REFUND_CHARGE_ERR", _I, "refunding the fee failed"),
    ("RESULT_AMOUNT_NOT_VALID", _I, "the refunded fee amount is wrong"),
    ("RESULT_ACCOUNT_NO_NOT_VALID", _I, "the account number is not valid"),
)

ERROR_CODES: Mapping[str, ErrorCode] = MappingProxyType(
    {code: ErrorCode(code, kind, meaning) for code, kind, meaning in _TABLE}
)


def classify(code: str) -> CodeKind | None:
    """The kind of a gateway error code (any letter case), or None when it is not known."""
    if not isinstance(code, str):
        return None
    entry = ERROR_CODES.get(code.strip().upper())
    return entry.kind if entry else None
