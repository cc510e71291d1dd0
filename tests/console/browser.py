"""Headless Debian Chromium through Selenium and chromium-driver (no browser or driver is downloaded),
plus the checks every browser test shares: axe-core (vendored), Navigation Timing, screenshots."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from pfepo.console import headless

REPO = Path(__file__).resolve().parents[2]
AXE = Path(__file__).parent / "vendor" / "axe.min.js"
ARTIFACTS = Path(os.environ.get("PFEPO_TEST_ARTIFACTS", REPO / "test-artifacts" / "console"))


def need_browser() -> None:
    why = headless.missing()
    if why:
        pytest.skip(why)


def chrome(width: int = 1280, height: int = 1000):
    """A headless Chromium session; the caller quits it."""
    need_browser()
    return headless.chromium(width, height)


login, wait = headless.login, headless.wait


def screenshot(driver, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


def axe_serious(driver) -> list[dict]:
    """axe-core's violations of impact serious or critical on the current page (WCAG 2 A/AA rules)."""
    driver.execute_script(AXE.read_text(encoding="utf-8"))
    res = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', "
        "'best-practice']}, resultTypes: ['violations']}).then(r => done(r.violations)).catch(e => done("
        "[{id: 'axe-error', impact: 'critical', help: String(e), nodes: []}]));")
    return [{"id": v["id"], "impact": v["impact"], "help": v["help"],
             "nodes": [n.get("target") for n in v.get("nodes", [])[:3]]}
            for v in res if v.get("impact") in ("serious", "critical")]


def navigation_ms(driver) -> dict[str, float]:
    """The page's Navigation Timing (ms from navigation start): response end, DOM content loaded, load."""
    t = driver.execute_script("const n = performance.getEntriesByType('navigation')[0]; return n.toJSON();")
    return {"response_end": t["responseEnd"], "dom_content_loaded": t["domContentLoadedEventEnd"],
            "load": t["loadEventEnd"], "transfer_bytes": t.get("transferSize", 0)}


def attr(driver, element_id: str, name: str) -> str | None:
    """An attribute read in one script call: the live overview may replace the element between two calls."""
    return driver.execute_script("const e = document.getElementById(arguments[0]); "
                                 "return e ? e.getAttribute(arguments[1]) : null;", element_id, name)


def text_of(driver, element_id: str) -> str:
    return driver.execute_script("const e = document.getElementById(arguments[0]); "
                                 "return e ? e.innerText : '';", element_id)


def js_errors(driver) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e.get("level") == "SEVERE"]


def copy_to(path: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, dest)


def monotonic() -> float:
    return time.monotonic()
