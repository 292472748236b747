"""The Alipay mapi batch refund protocol as pure functions (no I/O, no clock, no key files).

Where each rule lives:

* `amounts`   -- CNY amounts: parsing, two-decimal formatting, limits.
* `charsets`  -- the accepted `_input_charset` spellings (utf-8, gbk).
* `signing`   -- the signing string, MD5 and RSA signatures, verification.
* `detail`    -- `detail_data` items, reason sanitizing, batch item rules.
* `batching`  -- packing refunds into batches (size, one item per trade).
* `dates`     -- Beijing time, `refund_date`, `batch_no`.
* `request`   -- the signed refund request, gateway URL, `notify_verify` query.
* `responses` -- the synchronous XML answer and the `notify_verify` answer.
* `forms`     -- form bodies in GBK or UTF-8.
* `notify`    -- `batch_refund_notify` and its `result_details`.
* `parts`     -- the fee, royalty and sub-trade parts every result entry may carry.
* `query`     -- `refund_fastpay_query`: the signed query and what its answer establishes.
* `xmldoc`    -- reading the gateway's small XML answers without expanding entities.
* `codes`     -- gateway error codes and what each means for a batch.
"""

from worker.mapi.amounts import MAX_AMOUNT, format_amount, parse_amount
from worker.mapi.batching import HasTradeNo, pack_batches
from worker.mapi.charsets import SUPPORTED_CHARSETS, codec_for
from worker.mapi.codes import ERROR_CODES, CodeKind, ErrorCode, classify
from worker.mapi.dates import (
    BEIJING,
    batch_no_date,
    beijing_date,
    is_valid_batch_no,
    make_batch_no,
    refund_date,
)
from worker.mapi.detail import (
    MAX_ITEMS,
    MAX_REASON_BYTES,
    DetailRow,
    RefundItem,
    decode_detail_data,
    decode_detail_rows,
    encode_detail_data,
    is_valid_trade_no,
    sanitize_reason,
)
from worker.mapi.forms import decode_form, encode_form
from worker.mapi.gateway_form import render_gateway_form
from worker.mapi.notify import (
    NOTIFY_TYPE,
    BatchRefundNotify,
    FeePart,
    ResultItem,
    RoyaltyPart,
    SubTradePart,
    UnfreezeResult,
    is_valid_notify_id,
    parse_notify,
    parse_result_details,
)
from worker.mapi.query import (
    QUERY_SERVICE,
    REFUND_NOT_EXIST,
    QueryStatus,
    RefundQueryAnswer,
    build_refund_query,
    parse_refund_query,
)
from worker.mapi.request import (
    SERVICE_NOPWD,
    SERVICE_PWD,
    Merchant,
    build_refund_request,
    check_merchant,
    gateway_url_with_charset,
    is_valid_partner,
    notify_verify_params,
)
from worker.mapi.responses import (
    NotifyVerifyAnswer,
    SyncResponse,
    SyncStatus,
    parse_notify_verify,
    parse_sync_response,
)
from worker.mapi.signing import sign, signing_string, verify

__all__ = [
    "BEIJING",
    "ERROR_CODES",
    "MAX_AMOUNT",
    "MAX_ITEMS",
    "MAX_REASON_BYTES",
    "NOTIFY_TYPE",
    "QUERY_SERVICE",
    "REFUND_NOT_EXIST",
    "SERVICE_NOPWD",
    "SERVICE_PWD",
    "SUPPORTED_CHARSETS",
    "BatchRefundNotify",
    "CodeKind",
    "DetailRow",
    "ErrorCode",
    "FeePart",
    "HasTradeNo",
    "Merchant",
    "NotifyVerifyAnswer",
    "QueryStatus",
    "RefundItem",
    "RefundQueryAnswer",
    "ResultItem",
    "RoyaltyPart",
    "SubTradePart",
    "SyncResponse",
    "SyncStatus",
    "UnfreezeResult",
    "batch_no_date",
    "beijing_date",
    "build_refund_query",
    "build_refund_request",
    "check_merchant",
    "classify",
    "codec_for",
    "decode_detail_data",
    "decode_detail_rows",
    "decode_form",
    "encode_detail_data",
    "encode_form",
    "format_amount",
    "gateway_url_with_charset",
    "is_valid_batch_no",
    "is_valid_notify_id",
    "is_valid_partner",
    "is_valid_trade_no",
    "make_batch_no",
    "notify_verify_params",
    "pack_batches",
    "parse_amount",
    "parse_notify",
    "parse_notify_verify",
    "parse_refund_query",
    "parse_result_details",
    "parse_sync_response",
    "refund_date",
    "render_gateway_form",
    "sanitize_reason",
    "sign",
    "signing_string",
    "verify",
]
