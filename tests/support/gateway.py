"""A signed refund request and the gateway's answers, as bytes, for the HTTP client tests."""

from __future__ import annotations

PARTNER = "2088101008267254"
SIGN = "9b3426cac65d36f64bffbfbc6ce50549"
DETAIL = "2014040311001004370000361525^5.00^协商退款"
PARAMS = {
    "service": "refund_fastpay_by_platform_nopwd",
    "partner": PARTNER,
    "_input_charset": "gbk",
    "sign_type": "MD5",
    "sign": SIGN,
    "batch_no": "20240501ab12",
    "refund_date": "2024-05-01 10:00:00",
    "batch_num": "1",
    "detail_data": DETAIL,
    "notify_url": "http://127.0.0.1:8080/alipay/notify",
}
XML_T = b'<?xml version="1.0" encoding="GBK"?>\n<alipay><is_success>T</is_success></alipay>'
XML_P = b"<alipay><is_success>P</is_success></alipay>"
XML_F = b'<?xml version="1.0" encoding="GBK"?><alipay><is_success>F</is_success><error>DUPLICATE_BATCH_NO</error></alipay>'  # noqa: E501
