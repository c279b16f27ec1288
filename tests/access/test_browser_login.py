"""Browser logins in headless Chromium (Debian's chromium + chromium-driver, selenium): the
local ``/login`` form, and the OIDC provider's login page (glewlwyd's own webapp: sign in, grant
the scopes) back into the web service, each ending in a session that DICOMweb accepts."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from glewlwyd import Provider
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ready
from selenium.webdriver.support.ui import WebDriverWait

from openjip.access import UserStore
from openjip.config import Settings
from openjip.web import WebService

FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
)  # fmt: skip
WAIT_SECONDS = 60


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    driver.set_page_load_timeout(WAIT_SECONDS)
    yield driver
    driver.quit()


@pytest.fixture
def web(oidc_settings: Settings) -> Iterator[WebService]:
    UserStore(oidc_settings.access_dir).add("lena", "lena-password-1", "researcher", ["p1"])
    service = WebService(oidc_settings)
    service.start()
    yield service
    service.stop()


def _json_page(browser: WebDriver) -> object:
    return json.loads(browser.find_element(By.TAG_NAME, "body").text)


def _arrives(browser: WebDriver, url: str) -> None:
    WebDriverWait(browser, WAIT_SECONDS).until(ready.url_to_be(url))


def test_local_login_form_in_a_browser(browser: WebDriver, web: WebService) -> None:
    # A browser navigating to any page or DICOMweb route without a session is sent to the form.
    browser.get(f"{web.url}/dicom-web/studies")
    WebDriverWait(browser, WAIT_SECONDS).until(ready.url_contains("/login?next=/dicom-web/studies"))
    browser.find_element(By.NAME, "username").send_keys("lena")
    browser.find_element(By.NAME, "password").send_keys("lena-password-1")
    browser.find_element(By.ID, "sign-in").click()
    _arrives(browser, f"{web.url}/dicom-web/studies")
    assert _json_page(browser) == []
    browser.get(f"{web.url}/me")
    assert _json_page(browser)["name"] == "lena"  # type: ignore[index]
    cookie = browser.get_cookie("openjip_session")
    assert cookie is not None and cookie["httpOnly"] and cookie["sameSite"] == "Lax"


def test_login_at_the_oidc_provider_lands_in_the_same_session(
    browser: WebDriver, web: WebService, provider: Provider
) -> None:
    provider.server.add_user("otto", "otto-password-1", ["openjip-viewer-p1"])
    browser.get(f"{web.url}/login")
    browser.find_element(By.ID, "oidc-login").click()
    # glewlwyd's login page (its webapp), reached by the authorization request with PKCE.
    WebDriverWait(browser, WAIT_SECONDS).until(ready.element_to_be_clickable((By.ID, "loginbut")))
    assert browser.current_url.startswith(provider.server.url)
    assert "code_challenge_method%3DS256" in browser.current_url
    browser.find_element(By.ID, "username").send_keys("otto")
    browser.find_element(By.ID, "password").send_keys("otto-password-1")
    browser.find_element(By.ID, "loginbut").click()
    grant = (By.XPATH, "//button[normalize-space()='Grant access']")
    WebDriverWait(browser, WAIT_SECONDS).until(ready.element_to_be_clickable(grant))
    for box in browser.find_elements(By.CSS_SELECTOR, "input[type=checkbox]"):
        if not box.is_selected():
            box.click()
    browser.find_element(*grant).click()
    proceed = (By.XPATH, "//button[normalize-space()='Continue']")
    WebDriverWait(browser, WAIT_SECONDS).until(ready.element_to_be_clickable(proceed))
    browser.find_element(*proceed).click()
    _arrives(browser, f"{web.url}/me")
    me = _json_page(browser)
    assert me["name"] == "otto"  # type: ignore[index]
    assert (me["roles"], me["projects"]) == (["viewer"], ["p1"])  # type: ignore[index]
    browser.get(f"{web.url}/dicom-web/studies")
    assert _json_page(browser) == []
