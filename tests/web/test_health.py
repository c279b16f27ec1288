"""/healthz answers 200 while store and index work and 503 with the reason when one breaks."""

from __future__ import annotations

import socket

import httpx
import pytest

from openjip.asgi import ServerError
from openjip.config import Settings
from openjip.web import WebService


def test_healthy_site_answers_200(http: httpx.Client) -> None:
    response = http.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "components": {"store": "ok", "index": "ok"}}


def test_unusable_store_answers_503_with_the_reason_then_recovers(
    http: httpx.Client, settings: Settings
) -> None:
    assert http.get("/healthz").status_code == 200
    objects = settings.storage_path
    moved = objects.with_name("objects.moved")
    objects.rename(moved)
    # A plain file where the store's directory should be: nothing can be written under it.
    objects.write_text("not a directory")
    try:
        response = http.get("/healthz")
        assert response.status_code == 503
        body = response.json()
        assert body["status"] == "unavailable"
        assert body["components"]["index"] == "ok"
        assert body["components"]["store"].startswith("StoreUnavailable")
    finally:
        objects.unlink()
        moved.rename(objects)
    assert http.get("/healthz").status_code == 200


def test_removed_index_answers_503_with_the_reason(http: httpx.Client, settings: Settings) -> None:
    assert http.get("/healthz").status_code == 200
    settings.index_path.unlink()
    response = http.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["components"]["store"] == "ok"
    assert "IndexUnavailable" in body["components"]["index"]
    assert "removed" in body["components"]["index"]


def test_without_credentials_only_the_status_is_told(web_service: WebService) -> None:
    for auth in (None, ("admin", "wrong password")):
        response = httpx.get(f"{web_service.url}/healthz", auth=auth, timeout=10)
        assert response.status_code == 200
        assert response.json() == {"status": "ok"}


def test_index_that_cannot_be_opened_answers_503(
    settings: Settings, admin_auth: tuple[str, str]
) -> None:
    blocker = settings.home_dir / "blocker"
    blocker.write_text("a file, so nothing can be created below it")
    settings.index.path = blocker / "index.sqlite3"
    settings.web.port = 0
    service = WebService(settings)
    service.start()
    try:
        response = httpx.get(f"{service.url}/healthz", auth=admin_auth, timeout=10)
    finally:
        service.stop()
    assert response.status_code == 503
    assert response.json()["components"]["store"] == "ok"
    assert response.json()["components"]["index"] != "ok"


def test_port_in_use_fails_at_start_with_a_clear_error(settings: Settings) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        settings.web.port = taken.getsockname()[1]
        service = WebService(settings)
        with pytest.raises(ServerError, match=r"cannot listen on 127\.0\.0\.1:.*in use"):
            service.start()
        service.stop()


def test_s3_store_on_a_closed_port_answers_503(
    settings: Settings, admin_auth: tuple[str, str]
) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    settings.storage.backend = "s3"
    settings.storage.s3_endpoint = f"127.0.0.1:{port}"
    settings.web.port = 0
    service = WebService(settings)
    service.start()
    try:
        response = httpx.get(f"{service.url}/healthz", auth=admin_auth, timeout=120)
    finally:
        service.stop()
    assert response.status_code == 503
    body = response.json()
    assert body["components"]["index"] == "ok"
    assert body["components"]["store"].startswith("StoreUnavailable")
    assert f"127.0.0.1:{port}" in body["components"]["store"]
