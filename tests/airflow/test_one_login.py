"""One login for the web service and Airflow, in headless Chromium against the real local stack
(Airflow's api-server with OpenjipAuthManager, the web service on the same OPENJIP_HOME): signed
in at the web service's ``/login``, the browser reaches Airflow's UI without a second login; signed
in at Airflow's login page, it reaches the web service; Airflow's logout ends both."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ready
from selenium.webdriver.support.ui import WebDriverWait

from openjip.access import UserStore
from openjip.access.sessions import CACHE_SECONDS
from openjip.web import WebService

sys.path.insert(0, str(Path(__file__).parents[1] / "access"))
from test_browser_login import WAIT_SECONDS
from test_browser_login import browser as browser  # the fixture: headless Chromium

PASSWORD = "one login for both"


@pytest.fixture
def web(local_site: Any) -> Iterator[WebService]:
    settings = local_site.settings.model_copy(deep=True)
    settings.web.port = 0
    users = UserStore(settings.access_dir)
    if users.get("lena") is None:
        users.add("lena", PASSWORD, "researcher", ["p1"])
    service = WebService(settings)
    service.start()
    yield service
    service.stop()


def _wait(browser: WebDriver, condition: Any) -> None:
    try:
        WebDriverWait(browser, WAIT_SECONDS).until(condition)
    except TimeoutException as error:
        page = browser.find_element(By.TAG_NAME, "body").text[:500]
        raise AssertionError(f"stuck at {browser.current_url}: {page}") from error


def _sign_in(browser: WebDriver, button: tuple[str, str]) -> None:
    browser.find_element(By.NAME, "username").send_keys("lena")
    browser.find_element(By.NAME, "password").send_keys(PASSWORD)
    browser.find_element(*button).click()


def _airflow_token_works(local_site: Any, browser: WebDriver) -> bool:
    cookie = browser.get_cookie("_token")
    if cookie is None:
        return False
    answer = httpx.get(
        f"{local_site.airflow.url}/api/v2/dags",
        headers={"Authorization": f"Bearer {cookie['value']}"},
        timeout=30,
    )
    return answer.status_code == 200


def _web_me(web: WebService, browser: WebDriver) -> int:
    cookie = browser.get_cookie("openjip_session")
    if cookie is None:
        return 401
    answer = httpx.get(f"{web.url}/me", cookies={"openjip_session": cookie["value"]}, timeout=30)
    return answer.status_code


def test_signed_in_at_the_web_service_the_browser_reaches_airflow(
    local_site: Any, web: WebService, browser: WebDriver
) -> None:
    browser.get(f"{web.url}/login?next=/me")
    _sign_in(browser, (By.ID, "sign-in"))
    _wait(browser, ready.url_to_be(f"{web.url}/me"))
    airflow = local_site.airflow.url
    browser.get(f"{airflow}/auth/login?next={airflow}/dags")  # where Airflow's UI sends a stranger
    _wait(browser, ready.url_to_be(f"{airflow}/dags"))
    assert not browser.find_elements(By.NAME, "password")  # no second login form
    assert _airflow_token_works(local_site, browser)


def test_signed_in_at_airflow_the_browser_reaches_the_web_service(
    local_site: Any, web: WebService, browser: WebDriver
) -> None:
    airflow = local_site.airflow.url
    browser.get(f"{airflow}/auth/login?next={airflow}/dags")
    _sign_in(browser, (By.CSS_SELECTOR, "button[type=submit]"))
    _wait(browser, ready.url_to_be(f"{airflow}/dags"))
    browser.get(f"{web.url}/me")
    assert '"name":"lena"' in browser.find_element(By.TAG_NAME, "body").text.replace(" ", "")
    assert _web_me(web, browser) == 200

    # Airflow's logout ends the web session too (the web process lets go of its cached copy
    # within CACHE_SECONDS).
    session = browser.get_cookie("openjip_session")
    assert session is not None
    browser.get(f"{airflow}/auth/logout")
    _wait(browser, ready.url_contains("/auth/login"))
    assert browser.get_cookie("_token") is None and browser.get_cookie("openjip_session") is None
    deadline = time.monotonic() + CACHE_SECONDS + 10
    status = 200
    while status == 200 and time.monotonic() < deadline:
        answer = httpx.get(f"{web.url}/me", cookies={"openjip_session": session["value"]})
        status = answer.status_code
        time.sleep(0.5)
    assert status == 401


def test_a_user_who_may_not_use_airflow_is_not_let_in_by_the_web_session(
    local_site: Any, web: WebService, browser: WebDriver
) -> None:
    users = UserStore(local_site.settings.access_dir)
    if users.get("ulf") is None:
        users.add("ulf", PASSWORD, "uploader", ["p1"])
    browser.get(f"{web.url}/login?next=/me")
    browser.find_element(By.NAME, "username").send_keys("ulf")
    browser.find_element(By.NAME, "password").send_keys(PASSWORD)
    browser.find_element(By.ID, "sign-in").click()
    _wait(browser, ready.url_to_be(f"{web.url}/me"))
    airflow = local_site.airflow.url
    browser.get(f"{airflow}/auth/login?next={airflow}/dags")
    _wait(browser, ready.presence_of_element_located((By.NAME, "password")))  # its form instead
    assert browser.get_cookie("_token") is None
