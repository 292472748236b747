"""The operator console in a real browser (headless Chromium) against a real console process.

One console (`refund-worker console` under gunicorn, tests.support.console) on its own
database, seeded through the ledger's own services; the browser signs in, reads the
overview, searches a refund, takes a decision and finds it in the audit log. Sign-in
lock-out, the redirect to sign-in, and the refusal of POSTs without a session or with a
wrong CSRF token are checked too (the last two with `requests`, as a forged form would
arrive). Screenshots go to docs/screenshots/ only with CONSOLE_SCREENSHOTS=1.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import requests
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from tests.support.browser import chromium, screenshot
from tests.support.console import RunningConsole, run_console
from tests.support.ledger import PARTNER, accepted_batch, rows
from worker.adapters.postgres import control, ledger

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def console() -> Iterator[RunningConsole]:
    with run_console() as running:
        running.add_operator("alice", PASSWORD)
        running.add_operator("bob", PASSWORD)
        yield running


@pytest.fixture(scope="module")
def seeded(console: RunningConsole) -> str:
    """Four refunds in one batch, the batch held by a configuration halt; its batch_no."""
    db = console.database()
    try:
        batch_no, _ = accepted_batch(db, prefix="ref")
        with db.transaction() as conn:
            ledger.update_batch(conn, batch_no, state="held")
            control.set_submission_halt(conn, PARTNER, "ILLEGAL_SIGN: the key was rotated")
    finally:
        db.close()
    return batch_no


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    with chromium() as driver:
        yield driver


def sign_in(driver: WebDriver, name: str, password: str) -> None:
    driver.find_element(By.NAME, "name").clear()
    driver.find_element(By.NAME, "name").send_keys(name)
    driver.find_element(By.NAME, "password").send_keys(password)
    button = driver.find_element(By.CSS_SELECTOR, "section.signin button[type=submit]")
    button.click()
    WebDriverWait(driver, 10).until(lambda _: detached(button))  # the answer's page came
    loaded(driver)


def detached(element: WebElement) -> bool:
    """Whether `element` left the document (chromedriver reports it in two ways)."""
    try:
        element.is_enabled()
    except WebDriverException:  # StaleElementReferenceException is one
        return True
    return False


def loaded(driver: WebDriver) -> None:
    WebDriverWait(driver, 10).until(
        lambda d: d.execute_script("return document.readyState") == "complete"
    )


def at(driver: WebDriver, path: str) -> bool:
    """Whether the browser arrived at `path` (waiting for a navigation under way)."""
    try:
        WebDriverWait(driver, 10).until(lambda d: urlsplit(d.current_url).path == path)
    except Exception:
        return False
    return True


def flash(driver: WebDriver, css: str) -> str:
    """The text of the message `css` on the page the last action led to."""
    found = WebDriverWait(driver, 10).until(lambda d: d.find_elements(By.CSS_SELECTOR, css))
    return str(found[0].text)


def halted(console: RunningConsole) -> bool:
    db = console.database()
    try:
        with db.transaction() as conn:
            return control.submission_halt(conn, PARTNER) is not None
    finally:
        db.close()


def audit_rows(console: RunningConsole, action: str) -> list[tuple[str, str, str | None]]:
    db = console.database()
    try:
        found = rows(
            db,
            "SELECT operator, outcome, target FROM audit_log WHERE action = %s ORDER BY id",
            action,
        )
    finally:
        db.close()
    return [(r[0], r[1], r[2]) for r in found]


def test_a_page_without_a_session_leads_to_sign_in_then_back(
    console: RunningConsole, seeded: str, browser: WebDriver
) -> None:
    browser.get(f"{console.url}/batches/{seeded}")
    here = urlsplit(browser.current_url)
    assert here.path == "/login" and f"next=/batches/{seeded}" in here.query
    assert browser.find_element(By.TAG_NAME, "h1").text == "Sign in"
    screenshot(browser, "sign-in")
    sign_in(browser, "alice", PASSWORD)
    assert at(browser, f"/batches/{seeded}"), browser.current_url
    browser.find_element(By.CSS_SELECTOR, "form.signout button").click()
    assert at(browser, "/login"), browser.current_url
    browser.get(f"{console.url}/")
    assert at(browser, "/login"), browser.current_url


def test_the_overview_search_history_and_a_decision(
    console: RunningConsole, seeded: str, browser: WebDriver
) -> None:
    browser.get(f"{console.url}/")
    sign_in(browser, "alice", PASSWORD)
    assert at(browser, "/"), browser.current_url
    page = browser.find_element(By.TAG_NAME, "main").text
    assert "ILLEGAL_SIGN: the key was rotated" in page
    assert re.search(rf"{PARTNER}\s+submitted\s+4", page), page
    assert re.search(rf"{PARTNER}\s+held\s+1", page), page
    assert len(browser.find_elements(By.CSS_SELECTOR, "svg[role=img] title")) == 2
    assert "The dead-letter queue is empty." in page
    screenshot(browser, "overview")

    box = browser.find_element(By.CSS_SELECTOR, "header form.search input[name=q]")
    box.send_keys("ref-2")
    browser.find_element(By.CSS_SELECTOR, "header form.search button").click()
    assert at(browser, "/refunds/ref-2"), browser.current_url
    assert "Refund ref-2" in browser.find_element(By.TAG_NAME, "h1").text
    timeline = browser.find_element(By.CSS_SELECTOR, "ol.timeline").text
    assert seeded in timeline or seeded in browser.find_element(By.TAG_NAME, "main").text
    browser.find_element(By.LINK_TEXT, seeded).click()
    assert at(browser, f"/batches/{seeded}"), browser.current_url
    assert "held" in browser.find_element(By.CSS_SELECTOR, "h1 .state").text
    assert len(browser.find_elements(By.CSS_SELECTOR, "table.grid tbody tr")) >= 4
    screenshot(browser, "batch")

    browser.get(f"{console.url}/")
    browser.find_element(By.XPATH, "//button[text()='Resume submission']").click()
    resumed = flash(browser, "p.flash-ok")
    assert f"Submission resumed for merchant {PARTNER}" in resumed
    assert "1 held batches are due again" in resumed
    assert not halted(console)
    assert audit_rows(console, "resume_submission") == [("alice", "ok", PARTNER)]

    # Not accepted needs the gateway's word (nothing answers here): refused, with the
    # guard's reason, and audited.
    browser.get(f"{console.url}/batches/{seeded}")
    browser.find_element(By.NAME, "reason").send_keys("checked the merchant console")
    browser.find_element(By.CSS_SELECTOR, "input[value=not_accepted]").click()
    browser.find_element(By.CSS_SELECTOR, "form.resolve button").click()
    refused = flash(browser, "p.flash-refused")
    assert refused.startswith(f"Refused: batch {seeded} cannot be resolved as not accepted")

    browser.find_element(By.LINK_TEXT, "Audit").click()
    audit = browser.find_element(By.TAG_NAME, "table").text
    assert re.search(rf"alice\s+resume_submission\s+{PARTNER}\s+ok", audit), audit
    assert re.search(rf"alice\s+resolve_not_accepted\s+{seeded}\s+refused", audit), audit
    assert re.search(r"alice\s+sign_in\s+-\s+ok", audit), audit
    screenshot(browser, "audit")
    browser.find_element(By.CSS_SELECTOR, "form.signout button").click()


def test_five_wrong_passwords_lock_the_account(console: RunningConsole, browser: WebDriver) -> None:
    browser.get(f"{console.url}/login")
    for attempt in range(5):
        sign_in(browser, "bob", f"not the password {attempt}")
        error = flash(browser, "section.signin p.flash-refused")
        if attempt < 4:
            assert error == "name or password is wrong"
    assert re.fullmatch(r"account locked until \d\d:\d\d UTC", error), error
    sign_in(browser, "bob", PASSWORD)
    assert at(browser, "/login"), browser.current_url
    assert "account locked until" in browser.find_element(By.CSS_SELECTOR, "p.flash-refused").text
    # An unknown name is told the same as a wrong password, however often.
    for _ in range(6):
        sign_in(browser, "nobody", "whatever it is")
    assert browser.find_element(By.CSS_SELECTOR, "p.flash-refused").text == (
        "name or password is wrong"
    )
    refused = [r for r in audit_rows(console, "sign_in") if r[0] == "bob"]
    assert refused == [("bob", "refused", None)] * 6
    unlocked = console.operators("unlock", "bob")
    assert unlocked.returncode == 0, unlocked.stdout + unlocked.stderr
    sign_in(browser, "bob", PASSWORD)
    assert at(browser, "/"), browser.current_url
    browser.find_element(By.CSS_SELECTOR, "form.signout button").click()


def token_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, html[:500]
    return match.group(1)


def test_forged_posts_are_refused_and_change_nothing(console: RunningConsole) -> None:
    db = console.database()
    try:
        with db.transaction() as conn:
            control.set_submission_halt(conn, PARTNER, "HAS_NO_PRIVILEGE")
    finally:
        db.close()
    resume = f"{console.url}/merchants/{PARTNER}/resume"

    anonymous = requests.post(resume, data={"csrf_token": "x"}, timeout=10)
    assert anonymous.status_code == 403 and "Sign-in required" in anonymous.text

    session = requests.Session()
    login = session.get(f"{console.url}/login", timeout=10)
    signed_in = session.post(
        f"{console.url}/login",
        data={"csrf_token": token_of(login.text), "name": "alice", "password": PASSWORD},
        timeout=10,
    )
    assert signed_in.status_code == 200 and urlsplit(signed_in.url).path == "/"
    cookie = session.cookies.get("refund_console")
    assert cookie and PASSWORD not in cookie

    for data in ({"csrf_token": "forged"}, {}):
        answer = session.post(resume, data=data, timeout=10)
        assert answer.status_code == 400
        assert "security token is missing, wrong" in answer.text
    assert halted(console)
    assert audit_rows(console, "csrf") == [("alice", "refused", f"/merchants/{PARTNER}/resume")] * 2
    assert audit_rows(console, "resume_submission") == [("alice", "ok", PARTNER)]

    # With its own token the same session may act, and the logs name the operator only.
    overview = session.get(f"{console.url}/", timeout=10)
    done = session.post(resume, data={"csrf_token": token_of(overview.text)}, timeout=10)
    assert done.status_code == 200 and "Submission resumed" in done.text
    assert not halted(console)
    logs = console.log_text()
    assert '"event": "console.csrf_refused"' in logs
    assert PASSWORD not in logs and cookie not in logs
