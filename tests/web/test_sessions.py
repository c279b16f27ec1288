"""Login sessions outlive the web process and are shared by its replicas: real web services
(uvicorn) over a real local store and over a real S3 server (SeaweedFS) that two replicas share;
logout and expiry end a session everywhere; the store holds no usable token."""

from __future__ import annotations

import json
import stat
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from openjip.access import UserStore
from openjip.access.sessions import CACHE_SECONDS, SESSIONS_PREFIX
from openjip.config import Settings
from openjip.storage import open_store
from openjip.web import WebService
from openjip.web.access import SESSION_COOKIE

PASSWORD = "a password of the viewer"


@pytest.fixture
def viewer(settings: Settings) -> None:
    UserStore(settings.access_dir).add("viewer", PASSWORD, "viewer")


def _service(settings: Settings) -> WebService:
    settings.web.port = 0
    service = WebService(settings.model_copy(deep=True))
    service.start()
    return service


def _log_in(service: WebService) -> str:
    with httpx.Client(base_url=service.url, timeout=30) as browser:
        answer = browser.post("/login", data={"username": "viewer", "password": PASSWORD})
        assert answer.status_code == 303, answer.text
        return str(browser.cookies[SESSION_COOKIE])


def _me(service: WebService, token: str) -> int:
    with httpx.Client(base_url=service.url, timeout=30) as browser:
        browser.cookies.set(SESSION_COOKIE, token)
        return browser.get("/me").status_code


def _until_refused(service: WebService, token: str) -> int:
    """The status once the other replica's cache has let the ended session go."""
    deadline = time.monotonic() + CACHE_SECONDS + 10
    while (status := _me(service, token)) == 200 and time.monotonic() < deadline:
        time.sleep(0.5)
    return status


def test_a_session_survives_a_restart_of_the_web_service(settings: Settings, viewer: None) -> None:
    first = _service(settings)
    try:
        token = _log_in(first)
        assert _me(first, token) == 200
    finally:
        first.stop()
    restarted = _service(settings)
    try:
        assert _me(restarted, token) == 200
        with httpx.Client(base_url=restarted.url, timeout=30) as browser:
            browser.cookies.set(SESSION_COOKIE, token)
            assert browser.post("/logout").status_code == 303
        assert _me(restarted, token) == 401
    finally:
        restarted.stop()


def test_the_store_keeps_no_usable_token_in_private_files(settings: Settings, viewer: None) -> None:
    service = _service(settings)
    try:
        token = _log_in(service)
        [kept] = list(open_store(settings).list(SESSIONS_PREFIX))
        path = settings.storage_path / kept.key
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        record = json.loads(path.read_text())
        assert token not in path.read_text() and token not in kept.key
        assert (record["name"], record["roles"], record["local"]) == ("viewer", ["viewer"], True)
        # An expired session is refused (and forgotten) even though its object is still there.
        record["expires"] = time.time() - 1
        path.write_text(json.dumps(record))
        restarted = _service(settings)  # a process that has not seen the session yet
        try:
            assert _me(restarted, token) == 401
        finally:
            restarted.stop()
        assert list(open_store(settings).list(SESSIONS_PREFIX)) == []
    finally:
        service.stop()


def test_two_replicas_on_one_s3_store_share_login_and_logout(
    settings: Settings, viewer: None, s3_server: Any
) -> None:
    settings.storage = s3_server.storage_settings(f"t-{uuid.uuid4().hex[:12]}")
    one, two = _service(settings), _service(settings)
    try:
        token = _log_in(one)
        assert _me(two, token) == 200  # no sticky sessions needed
        assert _me(one, token) == 200
        with httpx.Client(base_url=two.url, timeout=30) as browser:
            browser.cookies.set(SESSION_COOKIE, token)
            assert browser.post("/logout").status_code == 303
        assert _me(two, token) == 401  # at once where the logout happened
        assert _until_refused(one, token) == 401  # within CACHE_SECONDS at the other replica
    finally:
        one.stop()
        two.stop()


def test_a_made_up_cookie_is_refused(settings: Settings, tmp_path: Path) -> None:
    service = _service(settings)
    try:
        assert _me(service, "made-up-token") == 401
    finally:
        service.stop()
