"""The viewer end to end: a real `audit serve` and a real headless Chromium.

Sign in, filter, page, open an event and see it verified, sign out; hostile event data
runs nothing and injects nothing; the pages fit 360 px and 1280 px (screenshots of both
are saved, see the `screenshots` fixture).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import Select, WebDriverWait
from tests.integration.server.support import Server, bearer
from tests.integration.ui.browser import page_overflows, save_full_page, set_width

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("server")]

INJECTED = "pwned"
HOSTILE_IMG = (
    '<img src=x onerror="document.body.appendChild('
    f"Object.assign(document.createElement('div'),{{id:'{INJECTED}'}}))\">"
)
HOSTILE_SCRIPT = "<script>alert('xss')</script>"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    started = Server(f"sqlite:///{tmp_path / 'audit.db'}", tmp_path, workers=1, threads=4)
    try:
        yield started
    finally:
        started.stop()


def admin(server: Server) -> dict[str, str]:
    assert server.bootstrap_token, server.output()
    return bearer(server.bootstrap_token)


def post(server: Server, events: list[dict[str, Any]]) -> None:
    response = requests.post(
        f"{server.url}/v1/events", json={"events": events}, headers=admin(server), timeout=30
    )
    assert response.status_code == 201, response.text


def read_token(server: Server) -> str:
    """A token that may only read: all the viewer needs."""
    response = requests.post(
        f"{server.url}/v1/tokens",
        json={"name": "auditor", "scopes": ["events:read"]},
        headers=admin(server),
        timeout=30,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["token"])


def event(n: int) -> dict[str, Any]:
    return {
        "id": f"evt-{n}",
        "action": "document.update" if n % 3 else "user.login",
        "actor": {"id": f"user-{n % 4}", "type": "user", "name": ["Alice", "Bob"][n % 2]},
        "targets": [{"id": f"doc-{n % 5}", "type": "document", "name": f"Report {n % 5}"}],
        "outcome": "failure" if n % 7 == 0 else "success",
        "occurred_at": f"2026-11-{1 + n % 28:02d}T{n % 24:02d}:15:00Z",
        "source": {"ip": "203.0.113.5", "user_agent": "Mozilla/5.0"},
        "description": f"Edited section {n} of the quarterly report",
        "metadata": {"n": n, "ticket": f"OPS-{n}"},
    }


def wait_for(driver: webdriver.Chrome, css: str) -> Any:
    return WebDriverWait(driver, 20).until(
        expected_conditions.presence_of_element_located((By.CSS_SELECTOR, css))
    )


def after_navigation(driver: webdriver.Chrome, act: Callable[[], object], css: str) -> Any:
    """Do `act` (a click or a key that loads another page), wait until that page has
    replaced this one, then for `css` on it: this page may hold `css` too, and a wait for
    it alone could return before the browser has left."""
    old = driver.find_element(By.TAG_NAME, "html")
    act()
    WebDriverWait(driver, 20).until(expected_conditions.staleness_of(old))
    return wait_for(driver, css)


def sign_in(driver: webdriver.Chrome, token: str) -> None:
    """Type the token and press Enter: the form works from the keyboard alone."""
    field = wait_for(driver, "input#token")
    assert driver.switch_to.active_element == field  # focused on arrival
    field.send_keys(token, Keys.ENTER)
    wait_for(driver, "table.events, p.empty")


def listed_seqs(driver: webdriver.Chrome) -> list[int]:
    cells = driver.find_elements(By.CSS_SELECTOR, "td[data-label='Seq'] a")
    return [int(cell.text) for cell in cells]


def no_alert(driver: webdriver.Chrome) -> bool:
    try:
        WebDriverWait(driver, 1).until(expected_conditions.alert_is_present())
    except TimeoutException:
        return True
    return False


def policy_violations(driver: webdriver.Chrome) -> list[str]:
    entries = driver.get_log("browser")
    return [e["message"] for e in entries if "Content Security Policy" in e["message"]]


def test_sign_in_filter_page_verify_and_sign_out(
    server: Server, chromium: webdriver.Chrome, screenshots: Path
) -> None:
    post(server, [event(n) for n in range(1, 71)])
    token = read_token(server)
    driver = chromium

    # What `make run` prints is all a user needs: the viewer's address and a token.
    assert f"Web viewer: {server.url}/ui/" in server.output()
    driver.get(f"{server.url}/")
    assert urlsplit(driver.current_url).path == "/ui/sign-in"
    save_full_page(driver, 360, screenshots / "sign-in-360.png")
    sign_in(driver, token)
    assert urlsplit(driver.current_url).path == "/ui/"
    assert listed_seqs(driver) == list(range(70, 20, -1))  # newest first, 50 a page

    # Filter with the form: an action prefix and an outcome.
    action = driver.find_element(By.ID, "f-action")
    action.send_keys("document.*")
    Select(driver.find_element(By.ID, "f-outcome")).select_by_value("success")
    Select(driver.find_element(By.ID, "f-limit")).select_by_value("25")
    after_navigation(driver, lambda: action.send_keys(Keys.ENTER), "table.events")
    query = parse_qs(urlsplit(driver.current_url).query)
    assert query["action"] == ["document.*"]
    assert query["outcome"] == ["success"]
    assert "actor_id" not in query  # empty filters stay out of the URL
    expected = [n for n in range(70, 0, -1) if n % 3 and n % 7]
    assert listed_seqs(driver) == expected[:25]
    actions = {a.text for a in driver.find_elements(By.CSS_SELECTOR, "td[data-label='Action'] a")}
    assert actions == {"document.update"}
    # Times: UTC from the server, the browser's own zone from the page's script.
    local = driver.find_element(By.CSS_SELECTOR, "td[data-label='Occurred'] .local").text
    assert "EST" in local or "GMT-5" in local, local
    save_full_page(driver, 1280, screenshots / "events-1280.png", max_height=1500)
    save_full_page(driver, 360, screenshots / "events-360.png", max_height=1500)
    assert not page_overflows(driver)
    set_width(driver, 1280)

    # The next page keeps the filters: a URL that can be bookmarked.
    next_page = driver.find_element(By.CSS_SELECTOR, "a[rel=next]")
    after_navigation(driver, next_page.click, "table.events")
    assert listed_seqs(driver) == expected[25:50]
    bookmark = driver.current_url
    driver.get(bookmark)
    assert listed_seqs(driver) == expected[25:50]

    # Open an event: every field, and its proof verified against the signed checkpoint.
    seq = expected[30]
    driver.find_element(By.CSS_SELECTOR, f"a[aria-label^='Event {seq}:']").click()
    status = wait_for(driver, "#proof-status")
    assert status.text == "Verified"
    page = driver.find_element(By.TAG_NAME, "main").text
    assert f"Edited section {seq} of the quarterly report" in page
    assert f'"ticket": "OPS-{seq}"' in page
    save_full_page(driver, 1280, screenshots / "event-1280.png")
    save_full_page(driver, 360, screenshots / "event-360.png", max_height=1500)
    assert not page_overflows(driver)
    set_width(driver, 1280)

    # The log page: its size, and the chain checked on demand.
    driver.find_element(By.LINK_TEXT, "Log").click()
    assert wait_for(driver, "#log-size").text == "70 events"
    driver.find_element(By.XPATH, "//button[text()='Check the chain now']").click()
    assert wait_for(driver, "#chain-result").text.startswith("Chain intact: 70 events checked")
    save_full_page(driver, 1280, screenshots / "log-1280.png")

    assert policy_violations(driver) == []

    driver.find_element(By.XPATH, "//button[text()='Sign out']").click()
    assert wait_for(driver, "p.notice").text == "You are signed out."
    driver.get(bookmark)
    assert urlsplit(driver.current_url).path == "/ui/sign-in"


def test_the_pages_are_reachable_by_keyboard(server: Server, chromium: webdriver.Chrome) -> None:
    post(server, [event(n) for n in range(1, 4)])
    driver = chromium
    driver.get(f"{server.url}/ui/")
    sign_in(driver, read_token(server))
    reached = []
    body = driver.find_element(By.TAG_NAME, "body")
    body.send_keys(Keys.TAB)
    for _ in range(40):
        active = driver.switch_to.active_element
        reached.append(active.get_attribute("href") or active.text or active.get_attribute("id"))
        active.send_keys(Keys.TAB)
    assert any(str(r).endswith("/ui/log") for r in reached)
    assert "Apply filters" in reached
    assert any("/ui/events/evt-" in str(r) for r in reached)
    assert "Sign out" in reached


def test_hostile_event_data_runs_nothing_and_keeps_the_layout(
    server: Server, chromium: webdriver.Chrome, screenshots: Path
) -> None:
    hostile = {
        "id": "evt-hostile",
        "action": "document.update",
        "actor": {"id": "javascript:alert(1)", "name": HOSTILE_IMG, "type": HOSTILE_SCRIPT},
        "targets": [{"id": "x" * 256, "name": '"><svg onload=alert(2)>'}],
        "description": HOSTILE_SCRIPT + "W" * 900,
        "source": {"user_agent": "</pre>" + HOSTILE_IMG},
        "metadata": {"link": "javascript:alert(3)", "html": HOSTILE_IMG, "long": "M" * 5000},
    }
    post(server, [event(1), hostile])
    driver = chromium
    driver.get(f"{server.url}/ui/")
    sign_in(driver, read_token(server))
    for width in (360, 1280):
        set_width(driver, width)
        for path in ("/ui/", "/ui/events/evt-hostile"):
            driver.get(f"{server.url}{path}")
            main = wait_for(driver, "main")
            assert no_alert(driver), path
            assert driver.find_elements(By.ID, INJECTED) == [], path
            injected = main.find_elements(By.CSS_SELECTOR, "img, script, svg, iframe")
            assert injected == [], path
            assert HOSTILE_SCRIPT in main.text  # shown as text, literally
            assert not page_overflows(driver), (path, width)
    hrefs = [a.get_attribute("href") or "" for a in driver.find_elements(By.TAG_NAME, "a")]
    assert not [h for h in hrefs if h.lower().startswith("javascript:")]
    assert driver.find_element(By.ID, "proof-status").text == "Verified"
    save_full_page(driver, 360, screenshots / "hostile-event-360.png")
    assert policy_violations(driver) == []
