"""The dashboard and a member page in a real browser: headless Chromium
(Debian's chromium and chromium-driver; .ci/run installs them) driven by
Selenium against the live server. Logs in through the login form, checks
that each chart rendered as SVG with its data marks and that the browser's
console logged no error, and saves screenshots under var/screenshots/ (CI's
artifacts)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import User

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENSHOTS = Path(settings.VAR_DIR) / "screenshots"
PASSWORD = "a-browser-test-password-1"
WIDTH = 1400

if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
    # Only where the browser is missing (a developer's machine); CI installs
    # it, and there a skip fails the run (LOJAL_REQUIRE_ALL_TESTS).
    pytest.skip(
        "needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)",
        allow_module_level=True,
    )

from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import (  # noqa: E402
    StaleElementReferenceException,
    WebDriverException,
)
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.remote.webelement import WebElement  # noqa: E402
from selenium.webdriver.support import expected_conditions as ready  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

# The live server answers from another thread: the data must be committed.
# Postgres: the club fixture runs insights_refresh.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={WIDTH},1000",
        "--lang=en",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(driver: WebDriver, css: str) -> WebElement:
    return WebDriverWait(driver, 30).until(
        ready.presence_of_element_located((By.CSS_SELECTOR, css))
    )


def submit_and_wait(driver: WebDriver, button: WebElement, css: str) -> WebElement:
    """Submit a form and wait for the next page's `css` (not this page's)."""
    page = driver.find_element(By.TAG_NAME, "html")
    button.click()
    WebDriverWait(driver, 30).until(lambda _: page_left(page))
    return wait_for(driver, css)


def page_left(page: WebElement) -> bool:
    """The old page's root is gone. While the next page replaces it, Chrome
    may answer a question about it with "Node with given id does not belong
    to the document" rather than with staleness (seen in CI): gone too."""
    try:
        page.is_enabled()
    except StaleElementReferenceException:
        return True
    except WebDriverException as exc:
        if "does not belong to the document" in str(exc):
            return True
        raise
    return False


def console_errors(driver: WebDriver) -> list[dict[str, Any]]:
    """What the console logged since the last call, at level SEVERE (errors,
    failed loads)."""
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def rendered_marks(driver: WebDriver, charts: str) -> list[WebElement]:
    """The data marks of the charts (figures) `charts` selects, each checked
    to be drawn by the browser as SVG with a size (getBBox exists only on
    SVG shapes)."""
    marks = driver.find_elements(By.CSS_SELECTOR, f"{charts} svg .mark")
    for mark in marks:
        box = driver.execute_script(
            "const b = arguments[0].getBBox(); return [b.width, b.height];", mark
        )
        assert box[0] > 0 and box[1] > 0, (charts, mark.get_attribute("outerHTML"))
    return marks


def screenshot(driver: WebDriver, name: str) -> Path:
    """The whole page: the window stretched to the document's height."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(WIDTH, min(max(height, 800), 8000))
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    assert driver.save_screenshot(str(path)), path
    driver.set_window_size(WIDTH, 1000)
    return path


def test_staff_log_in_to_the_dashboard_and_a_member_page_with_charts_drawn(
    browser, live_server, club
):
    User.objects.create_superuser("boss", "boss@example.com", PASSWORD)
    buyer = club["buyer"]

    # Log in through the form: the admin's home page is the dashboard.
    browser.get(f"{live_server.url}/admin/")
    wait_for(browser, "#login-form")
    browser.find_element(By.NAME, "username").send_keys("boss")
    browser.find_element(By.NAME, "password").send_keys(PASSWORD)
    submit_and_wait(
        browser,
        browser.find_element(By.CSS_SELECTOR, "#login-form [type=submit]"),
        "#panel-members",
    )
    assert browser.current_url == f"{live_server.url}/admin/"

    # Choose Sweden, where the fixture's club lives.
    Select(browser.find_element(By.ID, "market-select")).select_by_value("SE")
    submit_and_wait(
        browser,
        browser.find_element(By.CSS_SELECTOR, ".market-picker [type=submit]"),
        "#panel-members",
    )
    assert browser.current_url.endswith("/admin/?market=SE")
    assert "The club in Sverige" in browser.find_element(By.TAG_NAME, "h1").text

    # Every chart drew its marks: NPS a dot per month answered, the eight
    # segments two bars each, the heatmap its cells, the roll-forward, the
    # balance owed a dot a month.
    assert len(rendered_marks(browser, "#panel-nps figure.chart")) >= 1
    assert len(rendered_marks(browser, "#panel-segments figure.chart")) == 16
    assert len(rendered_marks(browser, "#panel-retention figure.chart")) >= 1
    assert len(rendered_marks(browser, "#panel-liability figure.chart-line")) == 12
    assert len(rendered_marks(browser, "#panel-liability figure.chart-bar")) > 12
    # A mark's tooltip names what it shows.
    champions = browser.find_element(By.CSS_SELECTOR, "#panel-segments .mark title")
    assert champions.get_attribute("textContent").startswith("Champions keep, share of members:")
    # The stylesheet is the service's own, and it loaded.
    assert browser.execute_script(
        "return [...document.styleSheets].some(s => (s.href || '').endsWith"
        "('/static/backoffice/dashboard.css') && s.cssRules.length > 0)"
    )
    assert console_errors(browser) == []
    assert screenshot(browser, "dashboard.png").stat().st_size > 20_000

    # The member page, found by the one search box.
    browser.get(f"{live_server.url}/admin/members/member/")
    search = wait_for(browser, "#searchbar")
    search.send_keys(buyer.member_number)
    submit_and_wait(
        browser,
        browser.find_element(By.CSS_SELECTOR, "#changelist-search [type=submit]"),
        "#result_list",
    )
    insights = submit_and_wait(
        browser, browser.find_element(By.LINK_TEXT, buyer.member_number), ".member-insights"
    )
    assert "champions" in insights.text and "keep" in insights.text
    assert len(rendered_marks(browser, ".member-insights figure.chart")) == 12  # a bar a month
    assert console_errors(browser) == []
    browser.execute_script("arguments[0].scrollIntoView()", insights)
    screenshot(browser, "member.png")
    insights.screenshot(str(SCREENSHOTS / "member-insights.png"))
