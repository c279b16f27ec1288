"""A running web service (real uvicorn on a free port) over a real local store and SQLite index."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from openjip.config import Settings
from openjip.web import WebService


@pytest.fixture
def web_service(settings: Settings) -> Iterator[WebService]:
    """The web service of ``settings``' site, listening on a free loopback port."""
    settings.web.port = 0
    service = WebService(settings)
    service.start()
    yield service
    service.stop()


@pytest.fixture
def http(web_service: WebService) -> Iterator[httpx.Client]:
    """An HTTP client talking to ``web_service``."""
    with httpx.Client(base_url=web_service.url, timeout=10) as client:
        yield client
