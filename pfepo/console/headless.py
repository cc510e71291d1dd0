"""Headless Debian Chromium (``/usr/bin/chromium`` + ``chromium-driver``) driven through Selenium, for the
browser tests and ``pfepo demo --screenshot``. Nothing is downloaded: the system browser and driver are
used, and Selenium Manager is told to stay offline. Selenium is imported lazily (the ``dev`` extra), so
the controller never needs it."""

from __future__ import annotations

import os
from pathlib import Path

CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-extensions",
         "--no-first-run", "--disable-background-networking", "--disable-component-update")


def missing() -> str | None:
    """Why no headless browser can run here, or None when one can."""
    if not (Path(CHROMIUM).exists() and Path(DRIVER).exists()):
        return "needs Debian chromium and chromium-driver (scripts/setup-system.sh installs them)"
    try:
        import selenium  # noqa: F401
    except ModuleNotFoundError:
        return "needs selenium (pip install 'pfepo[dev]')"
    return None


def chromium(width: int = 1280, height: int = 1000):
    """A headless Chromium session; the caller quits it."""
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must never try to download anything
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in (*FLAGS, f"--window-size={width},{height}"):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(DRIVER), options=opts)


def wait(driver, cond, timeout: float, what: str):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(cond, f"timed out waiting for {what}")


def login(driver, base: str, token: str, timeout_s: float = 10.0) -> None:
    """The console's login form with a bearer token; lands on the overview."""
    from selenium.webdriver.common.by import By

    driver.get(f"{base}/ui/login")
    field = driver.find_element(By.ID, "token")
    field.send_keys(token)
    field.submit()
    wait(driver, lambda d: d.current_url.endswith("/ui/overview"), timeout_s, "login lands on the overview")


def full_page(driver, path: Path, width: int = 1280, max_height: int = 4000) -> Path:
    """A PNG of the whole page: the viewport set to the document's height (at most ``max_height``) through
    the DevTools protocol (a headless window's size does not grow the page's viewport), then restored."""
    height = int(driver.execute_script("return document.documentElement.scrollHeight") or 1000)
    height = min(max_height, max(600, height))
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(path))
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    return path
