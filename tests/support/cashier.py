"""Drive the sandbox's password refund pages the way an operator's browser does.

    params = pwd_params(sb, notify_url=rx.url)
    page = open_cashier(sb, params)          # the merchant's auto-submitting form
    answer = confirm(sb, page, account=PARTNER, password=DEFAULT_PAYMENT_PASSWORD)

`open_cashier` posts the request as an HTML form does (hidden fields encoded in
the page's charset, POST to `<gateway>?_input_charset=<charset>`), `confirm`
posts the page's `pay-form` back with what the operator typed. Both return a
`Page`: the response and its HTML parsed with Beautiful Soup, decoded in the
charset the response declares.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

import requests
from bs4 import BeautifulSoup, Tag

from tests.support.sandbox import PARTNER, RunningSandbox, refund_params, submit
from worker.mapi import SERVICE_PWD, encode_form

__all__ = ["Page", "confirm", "open_cashier", "page_of", "pwd_params"]


@dataclass(frozen=True)
class Page:
    """One HTML answer of the cashier."""

    response: requests.Response
    soup: BeautifulSoup

    @property
    def status(self) -> int:
        return self.response.status_code

    @property
    def charset(self) -> str:
        match = re.search(r"charset=([\w-]+)", self.response.headers.get("Content-Type", ""))
        assert match, self.response.headers
        return match.group(1)

    def by_id(self, element_id: str) -> Tag | None:
        found = self.soup.find(id=element_id)
        return found if isinstance(found, Tag) else None

    def text(self, element_id: str) -> str:
        element = self.by_id(element_id)
        assert element is not None, f"no id={element_id!r} in {self.response.text[:2000]}"
        return element.get_text(" ", strip=True)

    @property
    def error_code(self) -> str:
        return self.text("error-code")

    def rows(self) -> list[list[str]]:
        """The cells of each body row of the `items` table, as text."""
        table = self.by_id("items")
        assert table is not None
        body = table.find("tbody")
        assert isinstance(body, Tag)
        return [[cell.get_text() for cell in row.find_all("td")] for row in body.find_all("tr")]

    def form_fields(self) -> dict[str, str]:
        """The named inputs of `pay-form` with their values."""
        form = self.by_id("pay-form")
        assert form is not None
        fields: dict[str, str] = {}
        for element in form.find_all("input"):
            name = element.get("name")
            if isinstance(name, str):
                value = element.get("value", "")
                fields[name] = value if isinstance(value, str) else ""
        return fields

    @property
    def action(self) -> str:
        form = self.by_id("pay-form")
        assert form is not None
        action = form.get("action")
        assert isinstance(action, str)
        return action


def page_of(response: requests.Response) -> Page:
    """A cashier answer as a `Page`, its HTML decoded in the charset it declares."""
    match = re.search(r"charset=([\w-]+)", response.headers.get("Content-Type", ""))
    charset = match.group(1) if match else "utf-8"
    return Page(response, BeautifulSoup(response.content.decode(charset), "html.parser"))


def pwd_params(sb: RunningSandbox, *, sign_type: str = "MD5", **kwargs: Any) -> dict[str, str]:
    """A signed password refund request (seller: the partner's user id unless given)."""
    if "seller_user_id" not in kwargs and "seller_email" not in kwargs:
        kwargs["seller_user_id"] = kwargs.get("partner", PARTNER)
    if sign_type == "RSA":
        kwargs["private_key"] = sb.merchant_private_key
    else:
        kwargs.setdefault("md5_key", sb.md5_key)
    return refund_params(sign_type=sign_type, service=SERVICE_PWD, **kwargs)


def open_cashier(sb: RunningSandbox, params: Mapping[str, str]) -> Page:
    """Post the request as the merchant's auto-submitting form does; the page that comes back."""
    return page_of(submit(sb, params))


def confirm(
    sb: RunningSandbox,
    page: Page,
    *,
    account: str,
    password: str,
    fields: Mapping[str, str] | None = None,
) -> Page:
    """Post `pay-form` of `page` as a browser does, with what the operator typed."""
    values = {**page.form_fields(), "account": account, "payment_password": password}
    values.update(fields or {})
    charset = page.charset
    response = requests.post(
        urljoin(sb.base_url, page.action),
        data=encode_form(values, charset),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=10,
    )
    return page_of(response)
