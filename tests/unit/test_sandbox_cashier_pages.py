"""The cashier's pure pieces: page rendering (escaping, charsets), the seller rule, tickets."""

from __future__ import annotations

from decimal import Decimal

import pytest
from bs4 import BeautifulSoup
from hypothesis import given
from hypothesis import strategies as st

from sandbox.config import PartnerConfig, check_payment_password, default_seller_email
from sandbox.pages import Notice, PayPage, error_page, message_of, pay_page, result_page
from sandbox.seller import Seller, SellerProblem, seller_of
from sandbox.tickets import TicketBook, TicketState, looks_like_ticket
from worker.domain.errors import ConfigError

PARTNER = "2088000000000001"
TRICKY = 'it\'s "quoted" <script>alert(1)</script> & 协商退款'
TICKET = "T" * 43


def page(charset: str = "utf-8", reason: str = TRICKY) -> PayPage:
    return PayPage(
        charset=charset,
        batch_no="20261122001",
        refund_date="2026-11-22 09:30:00",
        seller=PARTNER,
        items=[("2016000000000000000001", Decimal("1.00"), reason)],
        ticket=TICKET,
        confirm_path="/cashier/confirm",
    )


def soup(body: bytes, charset: str = "utf-8") -> BeautifulSoup:
    return BeautifulSoup(body.decode(charset), "html.parser")


# -- pages -------------------------------------------------------------------------------------


def test_reasons_are_escaped_and_read_back_exactly() -> None:
    body = pay_page(page())
    assert b"<script>" not in body
    assert "&lt;script&gt;" in body.decode() and "&#39;" in body.decode()
    cells = [td.get_text() for td in soup(body).select("#items tbody td")]
    assert cells[0] == "2016000000000000000001" and cells[1] == "1.00"
    assert cells[-1] == TRICKY


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=80))
def test_any_reason_round_trips_through_the_page(reason: str) -> None:
    cells = soup(pay_page(page(reason=reason))).select("#items tbody td.reason")
    assert cells[0].get_text() == reason


def test_a_gbk_page_is_written_in_gbk_and_says_so() -> None:
    body = pay_page(page("gbk", reason="部分退款 €"))
    text = body.decode("gbk")
    assert '<meta charset="gbk">' in text
    assert soup(body, "gbk").select_one("#items td.reason").get_text() == "部分退款 €"
    with pytest.raises(UnicodeDecodeError):
        body.decode("utf-8")


def test_the_form_carries_the_ticket_and_the_two_inputs() -> None:
    doc = soup(pay_page(page()))
    form = doc.select_one("#pay-form")
    assert form is not None and form["action"] == "/cashier/confirm" and form["method"] == "post"
    names = {i["name"]: i.get("type") for i in form.select("input")}
    assert names == {"ticket": "hidden", "account": "text", "payment_password": "password"}
    assert form.select_one("input[name=ticket]")["value"] == TICKET
    assert doc.select_one("#confirm") is not None
    assert doc.select_one("#error") is None
    assert doc.select_one("#total").get_text() == "1.00 元"


def test_an_error_shows_in_both_languages_and_keeps_the_account_escaped() -> None:
    body = pay_page(
        page(),
        error=Notice("支付密码不正确", "payment password incorrect"),
        account='a"b<',
        tries_left=3,
    )
    doc = soup(body)
    assert "支付密码不正确" in doc.select_one("#error").get_text()
    assert "3 tries left" in doc.select_one("#error").get_text()
    assert doc.select_one("#account")["value"] == 'a"b<'


def test_result_and_error_pages_carry_their_ids() -> None:
    items = [
        ("2016000000000000000001", Decimal("1.25"), "r"),
        ("2016000000000000000002", Decimal("2.00"), ""),
    ]
    result = soup(result_page("utf-8", batch_no="20261122001", seller=PARTNER, items=items))
    text = result.select_one("#result").get_text()
    assert "20261122001" in text and "退款申请已受理" in text
    assert "3.25 元" in result.get_text()
    error = soup(error_page("DUPLICATE_BATCH_NO", detail="<x>", batch_no="20261122001"))
    assert error.select_one("#error-code").get_text() == "DUPLICATE_BATCH_NO"
    assert "重复的批次号" in error.select_one("#error-message").get_text()
    assert error.select_one("#error-detail").get_text() == "<x>"


def test_every_code_has_a_message() -> None:
    assert message_of("SELLER_INFO_NOT_EXIST").zh == "卖家信息不存在"
    assert message_of("TICKET_USED").en == "this refund page was already confirmed"
    assert message_of("NO_SUCH_CODE_EVER").en == "the request was refused"


# -- the seller ----------------------------------------------------------------------------------

OURS = PartnerConfig(PARTNER, md5_key="k" * 32)
WITH_EMAIL = PartnerConfig(PARTNER, md5_key="k" * 32, seller_email="Shop@Example.test")


@pytest.mark.parametrize(
    ("params", "partner", "expected"),
    [
        (
            {"seller_user_id": PARTNER},
            OURS,
            Seller(PARTNER, default_seller_email(PARTNER), "seller_user_id"),
        ),
        ({"seller_email": default_seller_email(PARTNER)}, OURS, "seller_email"),
        ({"seller_email": "shop@example.TEST"}, WITH_EMAIL, "seller_email"),
        ({"seller_user_id": PARTNER, "seller_email": "other@x.test"}, OURS, "seller_user_id"),
        ({}, OURS, "ILLEGAL_ARGUMENT"),
        ({"seller_user_id": "", "seller_email": ""}, OURS, "ILLEGAL_ARGUMENT"),
        ({"seller_user_id": "2088000000000002"}, OURS, "SELLER_INFO_NOT_EXIST"),
        (
            {"seller_user_id": "2088000000000002", "seller_email": default_seller_email(PARTNER)},
            OURS,
            "SELLER_INFO_NOT_EXIST",
        ),
        ({"seller_user_id": "1234"}, OURS, "ILLEGAL_USER"),
        ({"seller_email": default_seller_email(PARTNER)}, WITH_EMAIL, "SELLER_INFO_NOT_EXIST"),
    ],
)
def test_the_seller_rule(params: dict[str, str], partner: PartnerConfig, expected: object) -> None:
    found = seller_of(params, partner)
    if isinstance(expected, Seller):
        assert found == expected
    elif expected in ("seller_user_id", "seller_email"):
        assert isinstance(found, Seller) and found.named_by == expected
    else:
        assert isinstance(found, SellerProblem) and found.code == expected


def test_the_operator_types_the_login_or_the_user_id() -> None:
    seller = seller_of({"seller_email": "shop@example.test"}, WITH_EMAIL)
    assert isinstance(seller, Seller) and seller.shown == "Shop@Example.test"
    assert seller.accepts(" SHOP@example.test ") and seller.accepts(PARTNER)
    assert not seller.accepts("2088000000000002") and not seller.accepts("")


def test_a_payment_password_must_be_printable_and_is_never_quoted() -> None:
    assert check_payment_password("sandbox pay 1") == "sandbox pay 1"
    for bad in ("", "x" * 129, "a\tb", "a\nb", 123):
        with pytest.raises(ConfigError) as caught:
            check_payment_password(bad)
        assert "value not shown" in str(caught.value)


# -- tickets -------------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_a_ticket_is_used_once() -> None:
    book: TicketBook[str] = TicketBook(now=Clock())
    ticket = book.open("payload")
    assert looks_like_ticket(ticket) and ticket != book.open("payload")
    assert book.look(ticket) == (TicketState.OPEN, "payload")
    assert book.use(ticket) == "payload"
    assert book.use(ticket) is None
    assert book.look(ticket) == (TicketState.USED, None)


def test_wrong_tries_lock_a_ticket_after_five() -> None:
    book: TicketBook[str] = TicketBook(now=Clock())
    ticket = book.open("p")
    assert [book.wrong(ticket) for _ in range(5)] == [4, 3, 2, 1, 0]
    assert book.look(ticket) == (TicketState.LOCKED, None)
    assert book.use(ticket) is None and book.wrong(ticket) == 0


def test_unknown_expired_and_forgotten_tickets() -> None:
    clock = Clock()
    book: TicketBook[int] = TicketBook(now=clock, ttl=60, max_open=2)
    assert book.look("A" * 43) == (TicketState.UNKNOWN, None)
    old = book.open(1)
    clock.t = 61
    assert book.look(old) == (TicketState.UNKNOWN, None)
    first, second, third = book.open(1), book.open(2), book.open(3)
    assert book.look(first)[0] is TicketState.UNKNOWN  # the oldest open one was forgotten
    assert book.look(second) == (TicketState.OPEN, 2) and book.look(third) == (TicketState.OPEN, 3)


@pytest.mark.parametrize("text", ["", "short", "A" * 42, "A" * 44, "A" * 42 + "=", "Ä" * 43])
def test_malformed_tickets_are_told_apart(text: str) -> None:
    assert not looks_like_ticket(text)
