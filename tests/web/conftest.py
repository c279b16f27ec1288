"""A running web service (real uvicorn on a free port) over a real local store and SQLite index,
with an admin user whose credentials the ``http`` and DICOMweb clients send."""

from __future__ import annotations

import secrets
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from openjip.access import UserStore
from openjip.config import Settings
from openjip.web import WebService

# The tests import access_site (pytest's importlib mode puts no test folder on sys.path).
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def admin_auth(settings: Settings) -> tuple[str, str]:
    """Name and password of an admin user of ``settings``' site (HTTP Basic)."""
    password = secrets.token_urlsafe(16)
    UserStore(settings.access_dir).add("admin", password, "admin")
    return "admin", password


@pytest.fixture
def web_service(settings: Settings, admin_auth: tuple[str, str]) -> Iterator[WebService]:
    """The web service of ``settings``' site, listening on a free loopback port."""
    settings.web.port = 0
    service = WebService(settings)
    service.start()
    yield service
    service.stop()


@pytest.fixture
def http(web_service: WebService, admin_auth: tuple[str, str]) -> Iterator[httpx.Client]:
    """An HTTP client talking to ``web_service`` as the admin."""
    with httpx.Client(base_url=web_service.url, timeout=10, auth=admin_auth) as client:
        yield client
