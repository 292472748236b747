"""What the sandbox answers a gateway request with, and the broken answers faults ask for.

`Answer` is the service's verdict for the WSGI layer: status, body, content
type, extra headers (the cashier's pages: `Cache-Control: no-store`), plus
the fault effects `delay` (wait before answering) and `reset` (answer
nothing, reset the TCP connection). `error_page` is the HTML a
failing proxy shows (`http_5xx`, `hang` without accepting); `garbage_body`
the 200 bodies of the `garbage` fault, which no client can parse.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = [
    "HTML_TYPE",
    "TEXT_TYPE",
    "XML_TYPE",
    "Answer",
    "error_page",
    "garbage_body",
    "text_type",
]

XML_TYPE: Final = "text/xml; charset=GBK"
TEXT_TYPE: Final = "text/plain; charset=GBK"
HTML_TYPE: Final = "text/html; charset=utf-8"

# Cut-off beginnings of each service's real answers.
_TRUNCATED: Final = {
    "refund": b'<?xml version="1.0" encoding="GBK"?>\n<alipay><is_succ',
    "notify_verify": b"tr",
    "query": b"is_succ",
}
_BUSY_PAGE: Final = (
    '<!DOCTYPE html><html><head><meta charset="utf-8"><title>支付宝 - 系统繁忙</title>'
    "</head><body><p>系统繁忙，请稍后再试。</p></body></html>"
).encode()


@dataclass(frozen=True)
class Answer:
    """What to answer a gateway request: status, body, content type, headers, fault effects.

    `headers`: sent besides Content-Type and Content-Length. `delay`: wait
    this long before answering. `reset`: answer nothing and reset the TCP
    connection instead.
    """

    status: int
    body: bytes
    content_type: str
    delay: float = 0.0
    reset: bool = False
    headers: tuple[tuple[str, str], ...] = ()


def error_page(status: int) -> bytes:
    return (
        f"<html><head><title>{status}</title></head>"
        f"<body><h1>{status}</h1><p>upstream error</p></body></html>"
    ).encode()


def garbage_body(service: str, kind: str) -> tuple[bytes, str]:
    """(body, content type) of a `garbage` answer: `html` (a busy page) or `truncated`."""
    if kind == "html":
        return _BUSY_PAGE, HTML_TYPE
    return _TRUNCATED[service], XML_TYPE if service == "refund" else TEXT_TYPE


def text_type(charset: str) -> str:
    """`text/plain; charset=<charset>`, as the query service answers."""
    return f"text/plain; charset={charset}"
