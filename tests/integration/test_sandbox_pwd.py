"""The password refund service over HTTP: the browser's form, the cashier pages, the books.

One sandbox process serves most of the module (MD5 and RSA, auto-trades on);
tests use fresh trades and batch numbers, and look only at their own
batches and notifications.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
import requests

from sandbox.config import DEFAULT_PAYMENT_PASSWORD, default_seller_email
from tests.support.cashier import Page, confirm, open_cashier, page_of, pwd_params
from tests.support.sandbox import (
    PARTNER,
    NotifyReceiver,
    RunningSandbox,
    partners_toml,
    resign,
    run_sandbox,
    trade_no,
)
from worker.mapi import (
    RefundItem,
    encode_form,
    notify_verify_params,
    parse_notify,
    verify,
)

pytestmark = pytest.mark.integration

TRICKY = 'it\'s "fine" <b>bold</b> & 协商退款'


@pytest.fixture(scope="module")
def sb() -> Iterator[RunningSandbox]:
    with run_sandbox(time_factor=0.0001) as running:
        yield running


@pytest.fixture(scope="module")
def rx() -> Iterator[NotifyReceiver]:
    with NotifyReceiver() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def gbk_rx() -> Iterator[NotifyReceiver]:
    with NotifyReceiver(charset="gbk") as receiver:
        yield receiver


def mine(receiver: NotifyReceiver, batch_no: str) -> list[dict[str, str]]:
    return [r.form for r in receiver.snapshot() if r.form and r.form.get("batch_no") == batch_no]


def notify_verify(sb: RunningSandbox, notify_id: str, partner: str = PARTNER) -> str:
    answer = requests.get(
        sb.gateway_url, params=notify_verify_params(partner, notify_id), timeout=10
    )
    return answer.text


def assert_password_page(page: Page, charset: str) -> None:
    assert page.status == 200, page.response.text[:2000]
    assert page.response.headers["Content-Type"] == f"text/html; charset={charset}"
    assert page.response.headers["Cache-Control"] == "no-store"
    fields = page.form_fields()
    assert set(fields) == {"ticket", "account", "payment_password"}
    assert len(fields["ticket"]) >= 32
    password = page.by_id("payment_password")
    assert password is not None and password.get("type") == "password"
    assert page.by_id("account") is not None and page.by_id("confirm") is not None


def nothing_executed(sb: RunningSandbox, batch_no: str, rx: NotifyReceiver) -> None:
    view = sb.client.ledger(batch_no=batch_no)
    assert view["batches"] == [] and view["notifications"] == {}
    assert all(not t["executions"] for t in view["trades"].values())
    sb.client.wait_idle(10)
    assert mine(rx, batch_no) == []


# -- the password page --------------------------------------------------------------------------


def test_an_md5_utf8_request_lands_on_the_password_page_listing_its_items_escaped(
    sb: RunningSandbox, rx: NotifyReceiver
) -> None:
    items = [
        RefundItem(trade_no(), Decimal("1.00"), TRICKY),
        RefundItem(trade_no(), Decimal("2.50"), "部分退款"),
    ]
    params = pwd_params(sb, items=items, notify_url=rx.url)
    page = open_cashier(sb, params)
    assert_password_page(page, "utf-8")
    assert page.rows() == [
        [items[0].trade_no, "1.00", "交易退款 refund", TRICKY],
        [items[1].trade_no, "2.50", "交易退款 refund", "部分退款"],
    ]
    html = page.response.text
    assert "<b>bold" not in html and "&lt;b&gt;bold&lt;/b&gt; &amp; 协商退款" in html
    assert page.text("seller") == PARTNER
    assert page.text("batch-no") == params["batch_no"]
    assert page.text("item-count") == "2"
    assert page.text("total") == "3.50 元"
    assert params["sign"] not in html and sb.md5_key not in html
    assert page.by_id("error") is None
    nothing_executed(sb, params["batch_no"], rx)


def test_an_rsa_gbk_request_is_paid_and_notified_in_gbk(
    sb: RunningSandbox, gbk_rx: NotifyReceiver
) -> None:
    item = RefundItem(trade_no(), Decimal("0.01"), "退款 <&> '\"")
    params = pwd_params(sb, sign_type="RSA", charset="gbk", items=[item], notify_url=gbk_rx.url)
    page = open_cashier(sb, params)
    assert_password_page(page, "gbk")
    assert page.rows() == [[item.trade_no, "0.01", "交易退款 refund", item.reason]]
    assert params["sign"] not in page.response.text

    done = confirm(sb, page, account=PARTNER, password=DEFAULT_PAYMENT_PASSWORD)
    assert done.status == 200 and done.charset == "gbk"
    assert "退款申请已受理" in done.text("result") and params["batch_no"] in done.text("result")
    sb.client.wait_idle(10)
    (form,) = mine(gbk_rx, params["batch_no"])
    assert form["sign_type"] == "RSA"
    assert verify(form, charset="gbk", public_key_pem=sb.alipay_public_key)
    assert [(i.trade_no, i.code) for i in parse_notify(form).items] == [(item.trade_no, "SUCCESS")]
    (batch,) = sb.client.ledger(batch_no=params["batch_no"])["batches"]
    assert batch["items"][0]["reason"] == item.reason


def test_a_get_request_with_everything_in_the_query_string_gets_the_page_too(
    sb: RunningSandbox, rx: NotifyReceiver
) -> None:
    params = pwd_params(sb, notify_url=rx.url)
    response = requests.get(
        sb.gateway_url, params=encode_form(params, "utf-8").decode("ascii"), timeout=10
    )
    assert_password_page(page_of(response), "utf-8")


# -- confirming ---------------------------------------------------------------------------------


def test_wrong_password_executes_nothing_and_the_right_one_executes_and_notifies_once(
    sb: RunningSandbox, rx: NotifyReceiver
) -> None:
    item = RefundItem(trade_no(), Decimal("5.00"), "协商退款")
    params = pwd_params(sb, items=[item], notify_url=rx.url)
    batch_no = params["batch_no"]
    page = open_cashier(sb, params)

    wrong = confirm(sb, page, account=PARTNER, password="not-the-password")
    assert wrong.status == 200
    assert "支付密码不正确" in wrong.text("error") and "payment password incorrect" in wrong.text(
        "error"
    )
    assert wrong.form_fields()["ticket"] == page.form_fields()["ticket"]
    other = confirm(sb, wrong, account="someone@else.test", password=DEFAULT_PAYMENT_PASSWORD)
    assert "the account is not the seller's" in other.text("error")
    nothing_executed(sb, batch_no, rx)

    done = confirm(sb, other, account=PARTNER, password=DEFAULT_PAYMENT_PASSWORD)
    assert done.status == 200
    assert done.response.headers["Cache-Control"] == "no-store"
    assert batch_no in done.text("result") and "退款申请已受理" in done.text("result")

    view = sb.client.ledger(batch_no=batch_no)
    (batch,) = view["batches"]
    assert batch["service"] == "refund_fastpay_by_platform_pwd"
    assert batch["seller"] == PARTNER
    assert [i["code"] for i in batch["items"]] == ["SUCCESS"]
    (execution,) = view["trades"][item.trade_no]["executions"]
    assert (execution["batch_no"], execution["amount"]) == (batch_no, "5.00")

    sb.client.wait_idle(10)
    (form,) = mine(rx, batch_no)  # exactly one, acknowledged by the receiver
    assert verify(form, charset="utf-8", md5_key=sb.md5_key)
    assert form["notify_type"] == "batch_refund_notify" and form["success_num"] == "1"
    # Acknowledged: no longer verifiable. A fresh (unacknowledged) one is checked below.
    assert notify_verify(sb, form["notify_id"]) == "false"

    again = open_cashier(sb, params)
    assert again.status == 200 and again.error_code == "DUPLICATE_BATCH_NO"
    assert again.by_id("pay-form") is None
    used = confirm(sb, page, account=PARTNER, password=DEFAULT_PAYMENT_PASSWORD)
    assert used.status == 410 and used.error_code == "TICKET_USED"
    summary = sb.client.summary()
    assert summary["double_executed"] == [] and summary["over_refunded"] == []
    assert summary["batches_by_service"]["refund_fastpay_by_platform_pwd"] >= 1


def test_notify_verify_says_true_for_the_password_batchs_notification(sb: RunningSandbox) -> None:
    # The merchant's notify page answers `success` only after asking notify_verify.
    verdicts: list[str] = []

    def ask(received: object, _index: int) -> bytes:
        form = getattr(received, "form", None) or {}
        verdicts.append(notify_verify(sb, form.get("notify_id", "")))
        return b"success"

    with NotifyReceiver(answer=ask) as checking:
        params = pwd_params(sb, notify_url=checking.url)
        page = open_cashier(sb, params)
        confirm(sb, page, account=PARTNER, password=DEFAULT_PAYMENT_PASSWORD)
        checking.wait_for(1)
        sb.client.wait_idle(10)
        assert len(mine(checking, params["batch_no"])) == 1
    assert verdicts == ["true"]


def test_the_seller_may_be_named_and_typed_by_its_email(
    sb: RunningSandbox, rx: NotifyReceiver
) -> None:
    login = default_seller_email(PARTNER)
    params = pwd_params(sb, seller_email=login, notify_url=rx.url)
    page = open_cashier(sb, params)
    assert_password_page(page, "utf-8")
    assert page.text("seller") == login
    done = confirm(sb, page, account=f"  {login.upper()} ", password=DEFAULT_PAYMENT_PASSWORD)
    assert params["batch_no"] in done.text("result")
    assert sb.client.ledger(batch_no=params["batch_no"])["batches"][0]["seller"] == login


def test_seller_user_id_wins_over_a_foreign_seller_email(sb: RunningSandbox) -> None:
    params = pwd_params(
        sb, seller_user_id=PARTNER, seller_email="someone@else.test", notify_url="http://x.test/n"
    )
    page = open_cashier(sb, params)
    assert_password_page(page, "utf-8")
    assert page.text("seller") == PARTNER


def test_five_wrong_tries_spend_the_ticket(sb: RunningSandbox, rx: NotifyReceiver) -> None:
    params = pwd_params(sb, notify_url=rx.url)
    page = open_cashier(sb, params)
    current = page
    for left in (4, 3, 2, 1):
        current = confirm(sb, current, account=PARTNER, password="wrong")
        assert f"{left} tries left" in current.text("error")
    locked = confirm(sb, current, account=PARTNER, password="wrong")
    assert locked.status == 200 and locked.error_code == "PAYMENT_PASSWORD_LOCKED"
    late = confirm(sb, page, account=PARTNER, password=DEFAULT_PAYMENT_PASSWORD)
    assert late.status == 410 and late.error_code == "PAYMENT_PASSWORD_LOCKED"
    nothing_executed(sb, params["batch_no"], rx)
    refused = sb.client.ledger(batch_no=params["batch_no"])["refused"]
    assert [r["code"] for r in refused] == ["PAYMENT_PASSWORD_LOCKED"]
    # Never accepted: the same batch may be submitted again.
    assert_password_page(open_cashier(sb, params), "utf-8")


def test_an_empty_password_counts_no_try(sb: RunningSandbox) -> None:
    page = open_cashier(sb, pwd_params(sb, notify_url="http://x.test/n"))
    for _ in range(6):
        again = confirm(sb, page, account=PARTNER, password="")
        assert "enter the account and the payment password" in again.text("error")
    assert_password_page(again, "utf-8")


def test_two_pages_of_one_batch_execute_it_once(sb: RunningSandbox, rx: NotifyReceiver) -> None:
    item = RefundItem(trade_no(), Decimal("1.00"), "r")
    params = pwd_params(sb, items=[item], notify_url=rx.url)
    pages = [open_cashier(sb, params) for _ in range(2)]
    answers: list[Page] = []

    def go(page: Page) -> None:
        answers.append(confirm(sb, page, account=PARTNER, password=DEFAULT_PAYMENT_PASSWORD))

    threads = [threading.Thread(target=go, args=(page,)) for page in pages]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    codes = sorted("result" if a.by_id("result") is not None else a.error_code for a in answers)
    assert codes == ["DUPLICATE_BATCH_NO", "result"]
    sb.client.wait_idle(10)
    assert len(mine(rx, params["batch_no"])) == 1
    assert len(sb.client.ledger(trade_no=item.trade_no)["trades"][item.trade_no]["executions"]) == 1
    assert sb.client.summary()["double_executed"] == []


def test_an_item_above_the_paid_amount_fails_as_in_the_nopwd_service(
    sb: RunningSandbox, rx: NotifyReceiver
) -> None:
    t = trade_no()
    sb.client.create_trade(t, "1.00")
    params = pwd_params(sb, items=[RefundItem(t, Decimal("2.00"), "too much")], notify_url=rx.url)
    done = confirm(sb, open_cashier(sb, params), account=PARTNER, password=DEFAULT_PAYMENT_PASSWORD)
    assert done.by_id("result") is not None
    sb.client.wait_idle(10)
    (form,) = mine(rx, params["batch_no"])
    assert form["result_details"] == f"{t}^2.00^REFUND_AMOUNT_NOT_VALID"
    assert sb.client.summary()["over_refunded"] == []


# -- refusals -------------------------------------------------------------------------------------


def _refusals(sb: RunningSandbox) -> dict[str, tuple[dict[str, str], str]]:
    key = sb.md5_key
    base = pwd_params(sb, notify_url="http://127.0.0.1:9/notify")

    def changed(**values: str | None) -> dict[str, str]:
        out = pwd_params(sb, notify_url="http://127.0.0.1:9/notify")
        for name, value in values.items():
            if value is None:
                out.pop(name, None)
            else:
                out[name] = value
        return resign(out, md5_key=key)

    t = trade_no()
    return {
        "missing seller": (changed(seller_user_id=None), "ILLEGAL_ARGUMENT"),
        "another seller": (changed(seller_user_id="2088000000000002"), "SELLER_INFO_NOT_EXIST"),
        "another seller email": (
            changed(seller_user_id=None, seller_email="shop@else.test"),
            "SELLER_INFO_NOT_EXIST",
        ),
        "malformed seller": (changed(seller_user_id="2088123"), "ILLEGAL_USER"),
        "missing notify_url": (changed(notify_url=None), "ILLEGAL_ARGUMENT"),
        "bad signature": ({**base, "sign": "0" * 32}, "ILLEGAL_SIGN"),
        "royalty": (
            changed(detail_data=f"{t}^1.00^r|a^2088000000000002^b^2088000000000003^0.10^r"),
            "PWD_REFUND_NOT_ALLOW_ROYALTY",
        ),
        "unknown partner": (changed(partner="2088999999999999"), "ILLEGAL_PARTNER"),
    }


def test_every_refusal_is_an_error_page_naming_its_code(sb: RunningSandbox) -> None:
    for case, (params, code) in _refusals(sb).items():
        page = open_cashier(sb, params)
        assert page.status == 200, case
        assert page.response.headers["Content-Type"].startswith("text/html"), case
        assert page.error_code == code, case
        assert page.text("error-message"), case
        assert page.by_id("pay-form") is None, case
        assert params["sign"] not in page.response.text, case
        if code != "ILLEGAL_PARTNER":
            refused = sb.client.ledger(batch_no=params["batch_no"])["refused"]
            assert [r["code"] for r in refused] == [code], case
            assert sb.client.ledger(batch_no=params["batch_no"])["batches"] == [], case
    missing = open_cashier(sb, _refusals(sb)["missing notify_url"][0])
    assert "notify_url" in missing.text("error-detail")


def test_parameters_the_password_service_does_not_take_are_ignored(sb: RunningSandbox) -> None:
    params = resign(
        {
            **pwd_params(sb, notify_url="http://127.0.0.1:9/notify"),
            "dback_notify_url": "not even a URL",
            "use_freeze_amount": "maybe",
            "return_type": "json",
        },
        md5_key=sb.md5_key,
    )
    assert_password_page(open_cashier(sb, params), "utf-8")
    assert '"event": "sandbox.cashier.params_ignored"' in sb.log_text()


# -- the confirm path under bad input -------------------------------------------------------------


def test_garbage_on_the_confirm_path_is_a_4xx_never_a_crash(sb: RunningSandbox) -> None:
    url = f"{sb.base_url}/cashier/confirm"
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    page = open_cashier(sb, pwd_params(sb, notify_url="http://x.test/n"))
    ticket = page.form_fields()["ticket"]
    cases: list[tuple[requests.Response, int]] = [
        (requests.get(url, timeout=10), 405),
        (requests.post(url, timeout=10), 400),
        (requests.post(url, data=b"\xff\xfe\x00garbage", headers=form, timeout=10), 400),
        (requests.post(url, data=b"ticket=short&account=a", headers=form, timeout=10), 400),
        (requests.post(url, json={"ticket": ticket}, timeout=10), 400),
        (
            requests.post(url, data=f"ticket={ticket}&ticket={ticket}", headers=form, timeout=10),
            400,
        ),
        (requests.post(url, data=f"ticket={ticket}", headers=form, timeout=10), 400),
        (
            requests.post(
                url,
                data=f"ticket={ticket}&account=%FF%FE&payment_password=x".encode(),
                headers=form,
                timeout=10,
            ),
            400,
        ),
        (
            requests.post(
                url,
                data=f"ticket={'A' * 43}&account=a&payment_password=b",
                headers=form,
                timeout=10,
            ),
            404,
        ),
        (requests.post(url, data=b"x" * (3 * 1024 * 1024), headers=form, timeout=30), 413),
    ]
    for response, status in cases:
        assert response.status_code == status, (status, response.text[:300])
    assert "TICKET_NOT_FOUND" in cases[-2][0].text
    assert sb.client.health()
    # None of it counted as a try: the page still works.
    assert_password_page(confirm(sb, page, account=PARTNER, password=""), "utf-8")


# -- where the password comes from ----------------------------------------------------------


def test_the_password_comes_from_the_cli_a_partners_entry_and_the_settings(tmp_path: Path) -> None:
    other = "2088000000000007"
    path = tmp_path / "partners.toml"
    path.write_text(
        partners_toml(
            [
                {
                    "partner": other,
                    "md5_key": "b" * 32,
                    "seller_email": "shop-7@example.test",
                    "payment_password": "shop-7-pay",
                }
            ]
        )
    )
    args = ["--payment-password", "cli-pay-000", "--partners-file", str(path)]
    with NotifyReceiver() as receiver, run_sandbox(extra_args=args) as sandbox:
        ours = open_cashier(sandbox, pwd_params(sandbox, notify_url=receiver.url))
        assert confirm(sandbox, ours, account=PARTNER, password=DEFAULT_PAYMENT_PASSWORD).by_id(
            "error"
        )
        assert confirm(sandbox, ours, account=PARTNER, password="cli-pay-000").by_id("result")

        theirs = pwd_params(
            sandbox,
            partner=other,
            md5_key="b" * 32,
            seller_email="shop-7@example.test",
            notify_url=receiver.url,
        )
        page = open_cashier(sandbox, theirs)
        assert page.text("seller") == "shop-7@example.test"
        assert confirm(sandbox, page, account=other, password="cli-pay-000").by_id("error")
        assert confirm(sandbox, page, account=other, password="shop-7-pay").by_id("result")

        assert sandbox.client.settings()["payment_password_default"] is False
        changed = sandbox.client.update_settings(payment_password="changed-at-run-time")
        assert changed["payment_password_default"] is False
        page = open_cashier(sandbox, pwd_params(sandbox, notify_url=receiver.url))
        assert confirm(sandbox, page, account=PARTNER, password="cli-pay-000").by_id("error")
        assert confirm(sandbox, page, account=PARTNER, password="changed-at-run-time").by_id(
            "result"
        )
        sandbox.client.wait_idle(10)
        assert len(receiver.snapshot()) == 3
        log = sandbox.log_text()
    for secret in ("cli-pay-000", "shop-7-pay", "changed-at-run-time"):
        assert secret not in log


def test_a_bad_payment_password_setting_is_refused(sb: RunningSandbox) -> None:
    response = requests.put(
        f"{sb.base_url}/_sandbox/settings", json={"payment_password": "zebra\tquokka"}, timeout=10
    )
    assert response.status_code == 400
    assert "zebra" not in response.text and "quokka" not in response.text
    assert sb.client.settings()["payment_password_default"] is True
