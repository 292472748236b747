"""A real browser for the console's tests: headless Chromium driven through Selenium.

    with chromium() as driver:
        driver.get(url)
        screenshot(driver, "sign-in")

`chromium()` uses Debian's `/usr/bin/chromium` and `/usr/bin/chromedriver` (installed by
`scripts/ensure-browser.sh`, which `make test` runs), headless, window 1366x900.
`screenshot(driver, name)` writes `docs/screenshots/<name>.png`, but only when
`CONSOLE_SCREENSHOTS=1` is set, so an ordinary test run leaves the tree as it was.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WINDOW = (1366, 900)
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@contextmanager
def chromium() -> Iterator[webdriver.Chrome]:
    """A headless Chromium, quit afterwards."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
        "--lang=en-US",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        driver.set_window_size(*WINDOW)
        driver.set_page_load_timeout(30)
        yield driver
    finally:
        driver.quit()


def screenshot(driver: webdriver.Chrome, name: str) -> Path | None:
    """Save the window as docs/screenshots/<name>.png when CONSOLE_SCREENSHOTS=1; its path."""
    if os.environ.get("CONSOLE_SCREENSHOTS") != "1":
        return None
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path
