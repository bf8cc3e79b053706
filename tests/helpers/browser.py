"""Headless Chromium for the browser tests: Debian's chromium + chromium-driver, never a downloaded driver."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from selenium.webdriver.chrome.webdriver import WebDriver

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WINDOW = (1360, 1100)
# Quiet and offline: no first-run UI, no background fetches (component updates, sync, safe browsing lists).
ARGUMENTS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    f"--window-size={WINDOW[0]},{WINDOW[1]}",
)


def missing() -> str | None:
    """Why a browser cannot start here (a reason for pytest.skip), or None."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not path.exists():
            return f"{path} is missing: `make test` installs Debian's chromium and chromium-driver"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed in .venv"
    return None


@contextmanager
def chromium() -> Iterator[WebDriver]:
    """A fresh browser with its own temporary profile (no cookies, no storage), quit and removed after."""
    # Imported here so that collecting the test module needs no selenium.
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    # The driver path is explicit, and this keeps selenium-manager from ever going online to look for one.
    os.environ["SE_OFFLINE"] = "true"
    profile = tempfile.mkdtemp(prefix="storefront-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (*ARGUMENTS, f"--user-data-dir={profile}"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
