"""A real headless Chromium (Debian's chromium and chromium-driver) driven by Selenium.

No browser or driver is ever downloaded: both paths are given, so Selenium Manager has
nothing to find. Where they are missing the tests skip and say what to install.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--lang=en-US",
    "--window-size=1280,900",
)
# A zone away from UTC, so the local times the page's script writes are visibly its own.
BROWSER_ZONE = "America/New_York"
SCREENSHOTS_ENV = "AUDIT_UI_SCREENSHOTS"


def missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            return (
                f"no {path}: install Debian's browser to run the viewer's browser tests "
                "(apt-get install chromium chromium-driver; .ci/run does)"
            )
    return None


def start_chromium(profile: Path, log: Path) -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(
        executable_path=CHROMEDRIVER,
        log_output=str(log),
        env={**os.environ, "TZ": BROWSER_ZONE},
    )
    return webdriver.Chrome(options=options, service=service)


def set_width(driver: webdriver.Chrome, width: int, height: int = 900) -> None:
    """Lay the page out as a screen `width` CSS pixels wide (a phone below 700)."""
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 700},
    )


def page_overflows(driver: webdriver.Chrome) -> bool:
    """Whether anything on the page is wider than the screen (a sideways scroll)."""
    return bool(
        driver.execute_script(
            "return document.documentElement.scrollWidth > window.innerWidth"
            " || document.body.scrollWidth > window.innerWidth"
        )
    )


def save_full_page(
    driver: webdriver.Chrome, width: int, path: Path, max_height: int = 3000
) -> None:
    """A screenshot of the page at `width`, as tall as the page (at most `max_height`)."""
    set_width(driver, width)
    height = int(driver.execute_script("return document.documentElement.scrollHeight"))
    set_width(driver, width, min(max(height, 600), max_height))
    assert driver.save_screenshot(str(path)), path
    set_width(driver, width)
