"""The Alipay OpenAPI refund protocol as pure functions (no I/O, no clock, no key files).

Two refund APIs, one refund per request (`docs/openapi.md`):
`alipay.trade.refund` (queried with `alipay.trade.fastpay.refund.query`) and the
red-envelope refund `alipay.fund.coupon.order.refund` (queried with
`alipay.fund.coupon.operation.query`, notified as `fund_stdtrustee_refund.success`).

Where each rule lives:

* `signing`   -- the signing strings of requests and notifications, RSA2 sign/verify.
* `request`   -- the application, common parameters, `biz_content`, the four request
  builders, `out_request_no` derived from the refund id.
* `responses` -- the signed member of a JSON answer, as raw text, and its verification.
* `answers`   -- the typed content of a verified answer.
* `codes`     -- what an answer establishes about the refund (`classify`).
* `notify`    -- the coupon refund notification: signature and fields.

What the worker does with a classified answer is decided in
`worker.domain.policy.openapi`.
"""

from worker.openapi.answers import (
    Answer,
    AnswerBody,
    CouponOperationResult,
    MemberKind,
    TradeRefundQueryResult,
    TradeRefundResult,
    Unverifiable,
)
from worker.openapi.codes import (
    CONFIG_CODES,
    UNKNOWN_SUB_CODES,
    Classification,
    Settlement,
    Verdict,
    classify,
)
from worker.openapi.notify import (
    COUPON_NOTIFY_TYPE,
    NOTIFY_ANSWER,
    CouponNotification,
    parse_coupon_notification,
    verify_notification,
)
from worker.openapi.request import (
    COUPON_QUERY,
    COUPON_REFUND,
    GATEWAY_URL,
    TRADE_REFUND,
    TRADE_REFUND_QUERY,
    OpenApiApp,
    biz_content_json,
    build_request,
    check_app,
    coupon_query_request,
    coupon_refund_request,
    out_request_no,
    remark_text,
    trade_refund_query_request,
    trade_refund_request,
)
from worker.openapi.responses import (
    AnswerShapeError,
    SignedPart,
    body_text,
    extract_signed,
    member_name,
    read_answer,
)
from worker.openapi.signing import (
    notification_signing_string,
    sign_content,
    sign_rsa2,
    signing_string,
    verify_rsa2,
)

__all__ = [
    "CONFIG_CODES",
    "COUPON_NOTIFY_TYPE",
    "COUPON_QUERY",
    "COUPON_REFUND",
    "GATEWAY_URL",
    "NOTIFY_ANSWER",
    "TRADE_REFUND",
    "TRADE_REFUND_QUERY",
    "UNKNOWN_SUB_CODES",
    "Answer",
    "AnswerBody",
    "AnswerShapeError",
    "Classification",
    "CouponNotification",
    "CouponOperationResult",
    "MemberKind",
    "OpenApiApp",
    "Settlement",
    "SignedPart",
    "TradeRefundQueryResult",
    "TradeRefundResult",
    "Unverifiable",
    "Verdict",
    "biz_content_json",
    "body_text",
    "build_request",
    "check_app",
    "classify",
    "coupon_query_request",
    "coupon_refund_request",
    "extract_signed",
    "member_name",
    "notification_signing_string",
    "out_request_no",
    "parse_coupon_notification",
    "read_answer",
    "remark_text",
    "sign_content",
    "sign_rsa2",
    "signing_string",
    "trade_refund_query_request",
    "trade_refund_request",
    "verify_notification",
    "verify_rsa2",
]
