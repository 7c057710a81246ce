"""Headless Chromium (Debian's ``chromium`` + ``chromium-driver``) for the tests of built pages."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
DRIVER = Path("/usr/bin/chromedriver")

needs_chromium = pytest.mark.skipif(
    not (CHROMIUM.exists() and DRIVER.exists()),
    reason="needs Chromium: apt-get install chromium chromium-driver")


@contextlib.contextmanager
def chromium(profile_dir: Path):
    """A headless Chromium driven by Selenium; the page's scripts run as soon as it is parsed."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", f"--user-data-dir={profile_dir}"):
        opts.add_argument(flag)
    opts.page_load_strategy = "eager"
    # Debian's chromedriver: Selenium Manager downloads nothing
    driver = webdriver.Chrome(service=Service(executable_path=str(DRIVER)), options=opts)
    try:
        yield driver
    finally:
        driver.quit()


def open_page(driver, page: Path, timeout: float = 60.0) -> None:
    """Navigate to a local page and wait until that page, not the blank one before it, is parsed.

    Once in CI, a script run right after ``driver.get`` on the music chapter (a 2.5 MB page
    with nine players) found no ``<audio>`` element at all: with the "eager" strategy the script
    ran on a document that was not that page, or not yet parsed. Waiting for the page's own URL
    and a parsed document rules both out.
    """
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.support.ui import WebDriverWait

    uri = page.as_uri()
    driver.get(uri)
    WebDriverWait(driver, timeout, ignored_exceptions=(WebDriverException,)).until(
        lambda d: d.execute_script(
            "return location.href === arguments[0] && document.readyState !== 'loading';", uri),
        f"{page.name} did not finish loading in {timeout:.0f} s")
