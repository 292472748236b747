"""The cashier's HTML pages, rendered from `sandbox/templates/` with Jinja2 (pure).

Three pages, in the style of Alipay's cashier (Chinese labels with short
English, inline CSS), each written in the request's charset:

* `pay_page`: the batch as received (seller account, batch_no, item count and
  total, a table `id="items"` of trade_no, amount and reason) and the form
  `id="pay-form"` posting the hidden `ticket`, `account` and
  `payment_password` to the confirm path; with an `error`, the notice
  `id="error"` above the form.
* `result_page`: `id="result"` with the batch_no and 退款申请已受理.
* `error_page`: the refusal, its code in `id="error-code"` and a readable
  message in Chinese and English (`id="error-message"`), plus the detail of
  what was wrong.

Every value is HTML-escaped by Jinja2's autoescaping (`'`, `"`, `<`, `>` and
`&` included); characters the charset cannot hold become character
references. No page ever shows a signature, a key or a password.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from jinja2 import Environment, PackageLoader, StrictUndefined

from worker.mapi import ERROR_CODES, codec_for, format_amount

__all__ = [
    "CASHIER_CODES",
    "Notice",
    "PayPage",
    "error_page",
    "html_type",
    "message_of",
    "pay_page",
    "result_page",
]

_ENV: Final = Environment(
    loader=PackageLoader("sandbox", "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=False,
    keep_trailing_newline=True,
)


@dataclass(frozen=True)
class Notice:
    """A message in Chinese and in English."""

    zh: str
    en: str


# The sandbox cashier's own codes (no gateway code says these things).
CASHIER_CODES: Final[Mapping[str, Notice]] = {
    "TICKET_NOT_FOUND": Notice(
        "页面已失效，请回到商户网站重新发起退款",
        "this refund page is unknown or expired: start the refund again from the merchant",
    ),
    "TICKET_USED": Notice(
        "此退款页面已提交过，不能重复提交", "this refund page was already confirmed"
    ),
    "PAYMENT_PASSWORD_LOCKED": Notice(
        "支付密码错误次数过多，此退款页面已失效",
        "too many wrong payment passwords: this refund page can no longer be used",
    ),
}

# Alipay's own wording of its codes, where its pages give one.
_ZH: Final[Mapping[str, str]] = {
    "ILLEGAL_SERVICE": "接口名称不正确",
    "ILLEGAL_PARTNER": "合作身份者ID不正确",
    "ILLEGAL_CHARSET": "参数编码字符集不正确",
    "ILLEGAL_ARGUMENT": "参数不正确",
    "ILLEGAL_SIGN_TYPE": "签名类型不正确",
    "ILLEGAL_SIGN": "签名不正确",
    "HAS_NO_PRIVILEGE": "没有该接口的权限",
    "ILLEGAL_USER": "用户ID不正确",
    "BATCH_NUM_EXCEED_LIMIT": "总笔数大于1000",
    "REFUND_DATE_ERROR": "错误的退款时间",
    "BATCH_NUM_ERROR": "传入的总笔数格式错误",
    "BATCH_NUM_NOT_EQUAL_TOTAL": "传入的退款条数不等于数据集解析出的退款条数",
    "SINGLE_DETAIL_DATA_EXCEED_LIMIT": "单笔退款明细超出限制",
    "DUBL_TRADE_NO_IN_SAME_BATCH": "同一批退款中存在两条相同的退款记录",
    "DUPLICATE_BATCH_NO": "重复的批次号",
    "BATCH_NO_FORMAT_ERROR": "批次号格式错误",
    "SELLER_INFO_NOT_EXIST": "卖家信息不存在",
    "DETAIL_DATA_FORMAT_ERROR": "数据集参数格式错误",
    "PWD_REFUND_NOT_ALLOW_ROYALTY": "有密接口不允许退分润",
    "BATCH_REFUND_LOCK_ERROR": "批量退款处理中，请稍后再试",
    "TRADE_STATUS_ERROR": "交易状态不允许退款",
}

_REFUSED: Final = Notice("调试错误，请回到请求来源地，重新发起请求。", "the request was refused")
_SPENT: Final = Notice("退款页面已失效", "this refund page can no longer be used")


@dataclass(frozen=True)
class PayPage:
    """What the password page shows; `items` are (trade_no, amount, reason) as received."""

    charset: str
    batch_no: str
    refund_date: str
    seller: str
    items: Sequence[tuple[str, Decimal, str]]
    ticket: str
    confirm_path: str


def html_type(charset: str) -> str:
    """The Content-Type of a page written in `charset`."""
    return f"text/html; charset={charset}"


def message_of(code: str) -> Notice:
    """What `code` means, in Chinese and English (a generic message for an unknown code)."""
    if code in CASHIER_CODES:
        return CASHIER_CODES[code]
    known = ERROR_CODES.get(code)
    return Notice(
        _ZH.get(code, "请求未被受理"),
        known.meaning if known is not None else "the request was refused",
    )


def pay_page(
    page: PayPage,
    *,
    error: Notice | None = None,
    account: str = "",
    tries_left: int | None = None,
) -> bytes:
    """The password page (again, with `error` shown and the account typed kept)."""
    return _render(
        "cashier_pay.html",
        page.charset,
        seller=page.seller,
        batch_no=page.batch_no,
        refund_date=page.refund_date,
        total=_total(page.items),
        items=[{"trade_no": t, "amount": format_amount(a), "reason": r} for t, a, r in page.items],
        ticket=page.ticket,
        confirm_path=page.confirm_path,
        error=error,
        account=account,
        tries_left=tries_left,
    )


def result_page(
    charset: str, *, batch_no: str, seller: str, items: Sequence[tuple[str, Decimal, str]]
) -> bytes:
    """The page after a correct password: the batch was taken (`id="result"`)."""
    return _render(
        "cashier_result.html",
        charset,
        batch_no=batch_no,
        seller=seller,
        count=len(items),
        total=_total(items),
    )


def error_page(
    code: str, *, charset: str = "utf-8", detail: str | None = None, batch_no: str | None = None
) -> bytes:
    """The page of a refusal or of a spent ticket: `code`, its meaning and `detail`."""
    return _render(
        "cashier_error.html",
        charset,
        code=code,
        headline=_SPENT if code in CASHIER_CODES else _REFUSED,
        message=message_of(code),
        detail=detail,
        batch_no=batch_no,
    )


def _total(items: Sequence[tuple[str, Decimal, str]]) -> str:
    return format_amount(sum((amount for _, amount, _ in items), Decimal("0.00")))


def _render(template: str, charset: str, **context: object) -> bytes:
    text = _ENV.get_template(template).render(charset=charset, **context)
    return text.encode(codec_for(charset) or "utf-8", "xmlcharrefreplace")
