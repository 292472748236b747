"""The password channel end to end, in a real browser: every role, the console and the
sandbox as processes (devtools.devstack), a merchant on `refund_fastpay_by_platform_pwd`.

An operator signs in, sees the waiting batch, approves it, lands on the sandbox's
password page (the console's form posts itself there), types the payment password, and
the refunds complete: in the console and as `refund.completed` on the bus. A wrong
password leaves the batch approved-not-notified and visible; a rejection ends the
refunds `rejected`. Screenshots go to docs/screenshots/ only with CONSOLE_SCREENSHOTS=1.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from devtools.devstack import ROLES, Stack, StackConfig
from tests.support.browser import chromium, screenshot

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]

OPERATOR, PASSWORD = "alice", "correct horse battery staple"
PAYMENT_PASSWORD = "sandbox-pay-123456"  # the sandbox's documented default
REASONS = ["客户退货", "it's \"broken\" <b> & cracked", "尺码不合适"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    config = StackConfig(
        workdir=Path(tmp_path_factory.mktemp("pwd-stack")),
        batch_max_wait=0.3,
        roles={**{role: 1 for role in ROLES}, "console": 1},
        extra_env={"ALIPAY_REFUND_SERVICE": "pwd", "CONSOLE_WORKERS": "2"},
    )
    with Stack(config) as running:
        running.add_operator(OPERATOR, PASSWORD)
        yield running


@pytest.fixture(scope="module")
def browser(stack: Stack) -> Iterator[WebDriver]:
    with chromium() as driver:
        driver.get(f"{stack.console_url}/login")
        driver.find_element(By.ID, "name").send_keys(OPERATOR)
        driver.find_element(By.ID, "password").send_keys(PASSWORD)
        driver.find_element(By.CSS_SELECTOR, "section.signin button[type=submit]").click()
        WebDriverWait(driver, 15).until(lambda d: "/login" not in d.current_url)
        yield driver


def publish_refunds(stack: Stack, tag: str, count: int = 3) -> list[str]:
    """`count` refunds of fresh trades; their refund_ids."""
    events: list[dict[str, Any]] = []
    for n in range(count):
        events.append(
            {
                "event_id": str(uuid.uuid4()),
                "refund_id": f"{tag}-{n}",
                "trade_no": f"20261122{uuid.uuid4().int % 10**16:016d}",
                "amount": f"{n + 1}.25",
                "order_id": f"order-{tag}-{n}",
                "reason": REASONS[n % len(REASONS)],
            }
        )
    stack.publish(events)
    return [str(e["refund_id"]) for e in events]


def batch_of(stack: Stack, refund_id: str, state: str, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = stack.query(
            "SELECT b.batch_no FROM refunds r JOIN batches b USING (batch_no)"
            " WHERE r.refund_id = %s AND b.state = %s",
            refund_id,
            state,
        )
        if found:
            return str(found[0][0])
        time.sleep(0.2)
    raise AssertionError(f"refund {refund_id} never reached a batch in state {state}")


def open_sheet(browser: WebDriver, stack: Stack, batch_no: str) -> None:
    browser.get(f"{stack.console_url}/approvals")
    browser.find_element(By.LINK_TEXT, batch_no).click()
    WebDriverWait(browser, 10).until(lambda d: d.find_elements(By.ID, "items"))


def approve_and_reach_the_password_page(browser: WebDriver, stack: Stack, batch_no: str) -> None:
    open_sheet(browser, stack, batch_no)
    browser.find_element(By.ID, "approve").click()
    WebDriverWait(browser, 20).until(lambda d: d.find_elements(By.ID, "pay-form"))
    assert browser.current_url.startswith(stack.sandbox_url)
    assert browser.find_element(By.ID, "batch-no").text == batch_no


def test_an_approved_batch_is_paid_on_the_password_page_and_completes(
    stack: Stack, browser: WebDriver
) -> None:
    refund_ids = publish_refunds(stack, "ok")
    batch_no = batch_of(stack, refund_ids[0], "awaiting_approval")

    browser.get(f"{stack.console_url}/approvals")
    queue = browser.find_element(By.ID, "approval-queue").text
    assert batch_no in queue and "awaiting approval" in queue and stack.default_partner in queue
    screenshot(browser, "approvals")
    open_sheet(browser, stack, batch_no)
    items = browser.find_element(By.ID, "items").text
    for reason in ("客户退货", "尺码不合适", "it's \"broken\" <b> & cracked"):
        assert reason in items  # escaped on the page, shown as it is
    screenshot(browser, "approval-sheet")

    approve_and_reach_the_password_page(browser, stack, batch_no)
    listed = browser.find_element(By.ID, "items").text
    assert "it's \"broken\" <b> & cracked" in listed  # the signed form kept every character
    screenshot(browser, "alipay-password-page")
    browser.find_element(By.ID, "account").send_keys(stack.default_partner)
    browser.find_element(By.ID, "payment_password").send_keys(PAYMENT_PASSWORD)
    browser.find_element(By.ID, "confirm").click()
    WebDriverWait(browser, 15).until(lambda d: d.find_elements(By.ID, "result"))
    assert batch_no in browser.find_element(By.ID, "result").text

    completed = stack.collect(refund_ids, timeout=60)
    assert set(refund_ids) <= set(completed)
    assert {(completed[r][0]["status"], completed[r][0]["code"]) for r in refund_ids} == {
        ("succeeded", "SUCCESS")
    }
    assert all(len(completed[r]) == 1 for r in refund_ids)
    browser.get(f"{stack.console_url}/batches/{batch_no}")
    WebDriverWait(browser, 10).until(
        lambda d: "completed" in d.find_element(By.CSS_SELECTOR, "h1 .state").text
    )
    screenshot(browser, "batch-completed")

    summary = stack.query("SELECT state, approved_by FROM batches WHERE batch_no = %s", batch_no)
    assert summary == [("completed", OPERATOR)]


def test_a_wrong_password_leaves_the_batch_approved_and_visible(
    stack: Stack, browser: WebDriver
) -> None:
    refund_ids = publish_refunds(stack, "wrong", count=2)
    batch_no = batch_of(stack, refund_ids[0], "awaiting_approval")
    approve_and_reach_the_password_page(browser, stack, batch_no)
    browser.find_element(By.ID, "account").send_keys(stack.default_partner)
    browser.find_element(By.ID, "payment_password").send_keys("not-the-password")
    browser.find_element(By.ID, "confirm").click()
    WebDriverWait(browser, 15).until(lambda d: d.find_elements(By.ID, "error"))
    assert "payment password" in browser.find_element(By.ID, "error").text.lower()

    browser.get(f"{stack.console_url}/approvals")
    row = browser.find_element(By.XPATH, f"//tr[td/a[text()='{batch_no}']]").text
    assert "approved, not notified" in row and OPERATOR in row
    screenshot(browser, "approvals-approved-not-notified")
    # Asked again, the console refuses to render the form a second time.
    open_sheet(browser, stack, batch_no)
    assert "not shown again" in browser.find_element(By.ID, "approved-note").text
    assert not browser.find_elements(By.ID, "approve")
    assert stack.query(
        "SELECT DISTINCT state FROM refunds WHERE refund_id = ANY(%s)", refund_ids
    ) == [("batched",)]


def test_a_rejected_batch_ends_its_refunds_rejected(stack: Stack, browser: WebDriver) -> None:
    refund_ids = publish_refunds(stack, "reject", count=2)
    batch_no = batch_of(stack, refund_ids[0], "awaiting_approval")
    open_sheet(browser, stack, batch_no)
    browser.find_element(By.ID, "reject-reason").send_keys("duplicate refunds of one order")
    browser.find_element(By.ID, "reject").click()
    WebDriverWait(browser, 10).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".flash"))
    assert "rejected" in browser.find_element(By.CSS_SELECTOR, ".flash").text

    completed = stack.collect(refund_ids, timeout=30)
    assert {(completed[r][0]["status"], completed[r][0]["code"]) for r in refund_ids} == {
        ("rejected", "OPERATOR_REJECTED")
    }
    assert stack.query("SELECT state FROM batches WHERE batch_no = %s", batch_no) == [
        ("rejected",)
    ]
    audit = stack.query(
        "SELECT operator, action, outcome FROM audit_log WHERE target = %s ORDER BY id", batch_no
    )
    assert audit == [(OPERATOR, "reject", "ok")]
