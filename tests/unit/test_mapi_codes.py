"""Every gateway error code is classified; unknown codes are not guessed."""

from __future__ import annotations

import pytest

from worker.mapi import ERROR_CODES, CodeKind, ErrorCode, classify

CONFIGURATION = [
    "ILLEGAL_SIGN",
    "ILLEGAL_PARTNER",
    "ILLEGAL_SERVICE",
    "ILLEGAL_SIGN_TYPE",
    "ILLEGAL_CHARSET",
    "HAS_NO_PRIVILEGE",
    "PARTNER_NOT_SIGN_PROTOCOL",
    "SELLER_INFO_NOT_EXIST",
    "ILLEGAL_USER",
    "ILLEGAL_DYN_MD5_KEY",
    "ILLEGAL_ENCRYPT",
    "ILLEGAL_EXTERFACE",
    "ILLEGAL_PARTNER_EXTERFACE",
    "ILLEGAL_SECURITY_PROFILE",
    "ILLEGAL_AGENT",
    "ILLEGAL_CLIENT_IP",
    "ILLEGAL_ENCODING",
    "ILLEGAL_ACCESS_SWITCH_SYSTEM",
    "EXTERFACE_IS_CLOSED",
]
BATCH_FIXABLE = [
    "ILLEGAL_ARGUMENT",
    "BATCH_NUM_EXCEED_LIMIT",
    "REFUND_DATE_ERROR",
    "BATCH_NUM_ERROR",
    "BATCH_NUM_NOT_EQUAL_TOTAL",
    "SINGLE_DETAIL_DATA_EXCEED_LIMIT",
    "DUBL_TRADE_NO_IN_SAME_BATCH",
    "BATCH_NO_FORMAT_ERROR",
    "DETAIL_DATA_FORMAT_ERROR",
    "BATCH_MEMO_LENGTH_EXCEED_LIMIT",
    "PWD_REFUND_NOT_ALLOW_ROYALTY",
]
RETRY_LATER = ["BATCH_REFUND_LOCK_ERROR", "SYSTEM_ERROR"]
DUPLICATE = ["DUPLICATE_BATCH_NO"]
ITEM = [
    "TRADE_STATUS_ERROR",
    "NOT_THIS_SELLER_TRADE",
    "NOT_THIS_PARTNERS_TRADE",
    "REFUND_AMOUNT_NOT_VALID",
    "TRADE_HAS_CLOSED",
    "TRADE_HAS_FINISHED",
    "TRADE_NOT_EXIST",
    "TRADE_NOT_EXISTS",
    "SELLER_BALANCE_NOT_ENOUGH",
    "TXN_RESULT_ACCOUNT_BALANCE_NOT_ENOUGH",
    "TXN_RESULT_ACCOUNT_STATUS_NOT_VALID",
    "BUYER_ERROR",
    "REASON_TRADE_REFUND_FEE_ERR",
    "REASON_HAS_REFUND_FEE_NOT_MATCH",
    "REASON_REFUND_AMOUNT_LESS_THAN_COUPON_FEE",
    "NANHANG_REFUND_CHARGE_AMOUNT_ERROR",
    "TRADE_PRODUCT_TYPE_NOT_ALLOW_REFUND",
    "RESULT_FACE_AMOUNT_NOT_VALID",
    "REFUND_CHARGE_FEE_ERROR",
    "REASON_REFUND_CHARGE_ERR",
    "RESULT_AMOUNT_NOT_VALID",
    "RESULT_ACCOUNT_NO_NOT_VALID",
]
EXPECTED = (
    {code: CodeKind.CONFIGURATION for code in CONFIGURATION}
    | {code: CodeKind.BATCH_FIXABLE for code in BATCH_FIXABLE}
    | {code: CodeKind.RETRY_LATER for code in RETRY_LATER}
    | {code: CodeKind.DUPLICATE_BATCH for code in DUPLICATE}
    | {code: CodeKind.ITEM for code in ITEM}
)


@pytest.mark.parametrize(("code", "kind"), sorted(EXPECTED.items()))
def test_every_code_is_classified(code: str, kind: CodeKind) -> None:
    assert classify(code) is kind
    assert classify(code.lower()) is kind
    entry = ERROR_CODES[code]
    assert entry == ErrorCode(code, kind, entry.meaning) and entry.meaning


def test_the_table_holds_exactly_the_expected_codes() -> None:
    assert set(ERROR_CODES) == set(EXPECTED)
    assert len(CONFIGURATION + BATCH_FIXABLE + RETRY_LATER + DUPLICATE + ITEM) == len(EXPECTED)


@pytest.mark.parametrize("code", ["SUCCESS", "", "NOT_A_REAL_CODE", "ILLEGAL", " "])
def test_unknown_codes_are_none(code: str) -> None:
    assert classify(code) is None


def test_classify_tolerates_non_strings() -> None:
    assert classify(None) is None  # type: ignore[arg-type]


def test_the_table_is_read_only() -> None:
    with pytest.raises(TypeError):
        ERROR_CODES["X"] = ErrorCode("X", CodeKind.ITEM, "x")  # type: ignore[index]
