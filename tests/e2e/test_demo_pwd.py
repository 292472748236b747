"""`make demo MODE=pwd` as a newcomer runs it: the demo prints the console's address and a
password made for the run, a person approves every batch in a browser and types the
sandbox's payment password, and the demo ends with every refund completed."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from tests.support.browser import chromium

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(400)]


def _read_instructions(process: subprocess.Popen[str]) -> tuple[str, str, str, str]:
    """(approvals URL, operator, operator password, payment password) from the demo's output."""
    assert process.stdout is not None
    seen: list[str] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        seen.append(line)
        if "published" in line:
            text = "".join(seen)
            url = re.search(r"operator console at (\S+)", text)
            who = re.search(r"sign in as '(\w+)' with password (\S+)", text)
            pay = re.search(r"as (\d{16}) with payment password (\S+)", text)
            assert url and who and pay, text
            return url[1], who[1], who[2], pay[2]
    raise AssertionError("the demo printed no instructions:\n" + "".join(seen))


def _approve_everything(driver: WebDriver, url: str, account: str, payment: str) -> int:
    """Approve and pay every batch waiting on the approvals page; how many."""
    paid = 0
    while True:
        driver.get(url)
        waiting = [
            row.find_element(By.TAG_NAME, "a").text
            for row in driver.find_elements(By.CSS_SELECTOR, "tr.state-awaiting_approval")
        ]
        if not waiting:
            return paid
        driver.find_element(By.LINK_TEXT, waiting[0]).click()
        driver.find_element(By.ID, "approve").click()
        WebDriverWait(driver, 20).until(lambda d: d.find_elements(By.ID, "pay-form"))
        driver.find_element(By.ID, "account").send_keys(account)
        driver.find_element(By.ID, "payment_password").send_keys(payment)
        driver.find_element(By.ID, "confirm").click()
        WebDriverWait(driver, 15).until(lambda d: d.find_elements(By.ID, "result"))
        paid += 1


def test_the_password_demo_completes_once_a_person_approves(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [
            sys.executable, "-m", "worker.entrypoints.cli", "demo", "--mode", "pwd",
            "--refunds", "30", "--timeout", "180", "--workdir", str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    try:
        url, operator, password, payment = _read_instructions(process)
        with chromium() as driver:
            driver.get(url)
            driver.find_element(By.ID, "name").send_keys(operator)
            driver.find_element(By.ID, "password").send_keys(password)
            driver.find_element(By.CSS_SELECTOR, "section.signin button[type=submit]").click()
            WebDriverWait(driver, 15).until(lambda d: "/login" not in d.current_url)
            paid = 0
            deadline = time.monotonic() + 150
            while process.poll() is None and time.monotonic() < deadline:
                try:
                    paid += _approve_everything(driver, url, "2088000000000001", payment)
                except WebDriverException:
                    # Every refund completed and the demo is taking its stack down.
                    process.wait(90)
                    break
                time.sleep(1)
        output, _ = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            # SIGINT lets the demo take its stack down (sandbox, roles, database, queues).
            process.send_signal(signal.SIGINT)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    assert process.returncode == 0, output
    assert paid >= 1
    assert re.search(r"refunds completed: (\d+)/\1", output), output
    assert "succeeded  SUCCESS" in output
