"""OpenjipAuthManager with a real OpenID Connect provider (glewlwyd, as in tests/access): an
Airflow api-server started here accepts the provider's access tokens on the REST API with the
roles of the user's groups, refuses forged ones, and a browser signs in through the provider's
own login page (authorization code + PKCE) into Airflow."""

from __future__ import annotations

import base64
import json
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "access"))
from glewlwyd import AUDIENCE, CLIENT_ID, CLIENT_SECRET, Glewlwyd, start_glewlwyd

GROUPS = {
    "openjip-viewer-p1": {"roles": ["viewer"], "projects": ["p1"]},
    "openjip-uploader-p2": {"roles": ["uploader"], "projects": ["p2"]},
    "openjip-admin": {"roles": ["admin"], "projects": ["*"]},
}
USERS = {
    "vera": ("vera-password-1", ["openjip-viewer-p1"]),
    "ulla": ("ulla-password-1", ["openjip-uploader-p2"]),
    "adam": ("adam-password-1", ["openjip-admin"]),
}


@dataclass
class SsoAirflow:
    url: str
    provider: Glewlwyd

    def token(self, name: str) -> str:
        password, groups = USERS[name]
        return str(self.provider.tokens(name, password, groups)["access_token"])


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def sso_airflow(airflow_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SsoAirflow]:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    provider = start_glewlwyd(tmp_path_factory.mktemp("glewlwyd"))
    try:
        provider.configure(f"{url}/auth/oidc/callback")
        for name, (password, groups) in USERS.items():
            provider.add_user(name, password, groups)
        home = tmp_path_factory.mktemp("sso-site")
        env = {
            **os.environ,
            "OPENJIP_HOME": str(home),
            "AIRFLOW__CORE__AUTH_MANAGER": "openjip.airflow.auth_manager.OpenjipAuthManager",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(64),
            "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
            "AIRFLOW__API__BASE_URL": url,
            "AIRFLOW__API__WORKERS": "1",
            "OPENJIP_ACCESS__OIDC_ISSUER": provider.issuer,
            "OPENJIP_ACCESS__OIDC_CLIENT_ID": CLIENT_ID,
            "OPENJIP_ACCESS__OIDC_CLIENT_SECRET": CLIENT_SECRET,
            "OPENJIP_ACCESS__OIDC_AUDIENCE": AUDIENCE,
            "OPENJIP_ACCESS__OIDC_GROUPS_CLAIM": "scope",
            "OPENJIP_ACCESS__OIDC_GROUPS": json.dumps(GROUPS),
            # glewlwyd grants groups as scopes.
            "OPENJIP_ACCESS__OIDC_SCOPES": json.dumps(["openid", *GROUPS]),
            "OPENJIP_ACCESS__OIDC_LEEWAY_SECONDS": "0",
        }
        airflow = str(Path(sys.executable).with_name("airflow"))
        with (home / "api-server.log").open("wb") as log:
            server = subprocess.Popen(
                [airflow, "api-server", "--host", "127.0.0.1", "--port", str(port)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline:
                assert server.poll() is None, (home / "api-server.log").read_text()[-3000:]
                try:
                    if httpx.get(f"{url}/api/v2/monitor/health", timeout=5).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.5)
            else:
                raise TimeoutError((home / "api-server.log").read_text()[-3000:])
            yield SsoAirflow(url, provider)
        finally:
            os.killpg(server.pid, 15)
            server.wait(timeout=60)
    finally:
        provider.stop()


def _get(sso: SsoAirflow, path: str, token: str) -> httpx.Response:
    return httpx.get(f"{sso.url}{path}", headers={"Authorization": f"Bearer {token}"}, timeout=30)


def test_provider_tokens_carry_the_roles_of_their_groups(sso_airflow: SsoAirflow) -> None:
    viewer, uploader, admin = (sso_airflow.token(name) for name in ("vera", "ulla", "adam"))
    assert _get(sso_airflow, "/api/v2/dags", viewer).status_code == 200
    assert _get(sso_airflow, "/api/v2/connections", viewer).status_code == 403
    assert _get(sso_airflow, "/api/v2/connections", admin).status_code == 200
    assert _get(sso_airflow, "/api/v2/dags", uploader).status_code == 403
    variable = {"key": "sso-test", "value": "1"}
    created = httpx.post(
        f"{sso_airflow.url}/api/v2/variables",
        json=variable,
        headers={"Authorization": f"Bearer {admin}"},
        timeout=30,
    )
    assert created.status_code in (201, 409), created.text
    refused = httpx.post(
        f"{sso_airflow.url}/api/v2/variables",
        json=variable,
        headers={"Authorization": f"Bearer {viewer}"},
        timeout=30,
    )
    assert refused.status_code == 403


def test_forged_provider_tokens_are_refused(sso_airflow: SsoAirflow) -> None:
    header, payload, signature = sso_airflow.token("vera").split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["scope"] = "openid openjip-admin"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    answer = _get(sso_airflow, "/api/v2/connections", f"{header}.{forged}.{signature}")
    assert answer.status_code in (401, 403)
    none = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    assert _get(sso_airflow, "/api/v2/dags", f"{none}.{forged}.").status_code in (401, 403)


def test_browser_login_through_the_provider_into_airflow(sso_airflow: SsoAirflow) -> None:
    from selenium import webdriver
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait
    from test_browser_login import FLAGS, WAIT_SECONDS

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in FLAGS:
        options.add_argument(flag)
    browser = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    browser.set_page_load_timeout(WAIT_SECONDS)
    waiting = WebDriverWait(browser, WAIT_SECONDS)

    def wait(condition: Any) -> None:
        try:
            waiting.until(condition)
        except TimeoutException as error:
            page = browser.find_element(By.TAG_NAME, "body").text[:500]
            raise AssertionError(f"stuck at {browser.current_url}: {page}") from error

    try:
        browser.get(f"{sso_airflow.url}/auth/login?next=/dags")
        browser.find_element(By.ID, "oidc-login").click()
        wait(ready.element_to_be_clickable((By.ID, "loginbut")))
        assert browser.current_url.startswith(sso_airflow.provider.url)
        assert "code_challenge_method%3DS256" in browser.current_url
        browser.find_element(By.ID, "username").send_keys("vera")
        browser.find_element(By.ID, "password").send_keys(USERS["vera"][0])
        browser.find_element(By.ID, "loginbut").click()
        # The scopes are granted once per user (the token test above may have done it).
        grant = (By.XPATH, "//button[normalize-space()='Grant access']")
        proceed = (By.XPATH, "//button[normalize-space()='Continue']")
        wait(
            ready.any_of(
                ready.element_to_be_clickable(grant), ready.element_to_be_clickable(proceed)
            )
        )
        if browser.find_elements(*grant):
            for box in browser.find_elements(By.CSS_SELECTOR, "input[type=checkbox]"):
                if not box.is_selected():
                    box.click()
            browser.find_element(*grant).click()
        wait(ready.element_to_be_clickable(proceed))
        browser.find_element(*proceed).click()
        wait(ready.url_to_be(f"{sso_airflow.url}/dags"))
        cookie = browser.get_cookie("_token")
        assert cookie is not None and cookie["httpOnly"]
    finally:
        browser.quit()
    payload = cookie["value"].split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert (claims["sub"], claims["roles"], claims["projects"]) == ("vera", ["viewer"], ["p1"])
    assert _get(sso_airflow, "/api/v2/dags", cookie["value"]).status_code == 200
    assert _get(sso_airflow, "/api/v2/variables", cookie["value"]).status_code == 403
