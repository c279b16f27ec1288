"""Access rules of the web service beyond the route matrix: the overwrite policy of STOW, the
login form and its session cookie, refuse-to-be-open, anonymous access on loopback, /healthz and
/metrics without credentials."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from access_site import PASSWORD, add_users, client, instance_bytes, stow_body
from pydantic import SecretStr

from openjip.access import AccessAudit, OpenAccessRefused
from openjip.config import Settings
from openjip.web import WebService
from openjip.web.access import SESSION_COOKIE


@pytest.fixture
def service(settings: Settings) -> Iterator[WebService]:
    add_users(settings)
    settings.web.port = 0
    running = WebService(settings)
    running.start()
    yield running
    running.stop()


def _start(settings: Settings) -> WebService:
    settings.web.port = 0
    running = WebService(settings)
    running.start()
    return running


def test_a_forged_copy_of_a_stored_instance_is_refused_and_audited(
    service: WebService, settings: Settings
) -> None:
    original, uids = instance_bytes(patient_name="DOE^JOHN")
    # The same SOP Instance UID with other content.
    forged, _ = instance_bytes(
        uids.study, uids.series, sop=uids.instance, patient_name="FORGED^NAME"
    )
    with client(service.url, "uploader") as uploader:
        for _ in range(2):  # the first copy, then the same bytes again (idempotent)
            body, headers = stow_body(original)
            assert (
                uploader.post("/dicom-web/studies", content=body, headers=headers).status_code
                == 200
            )
        body, headers = stow_body(forged)
        refused = uploader.post("/dicom-web/studies", content=body, headers=headers)
    assert refused.status_code == 409
    (failure,) = refused.json()["00081198"]["Value"]
    assert failure["00081197"]["Value"] == [0x0111]
    assert "first copy is kept" in failure["00000902"]["Value"][0]

    with client(service.url, "viewer") as viewer:
        (study,) = viewer.get(f"/dicom-web/studies?StudyInstanceUID={uids.study}").json()
        assert study["00100010"]["Value"] == [{"Alphabetic": "DOE^JOHN"}]
        kept = viewer.get(
            f"/dicom-web/studies/{uids.study}/series/{uids.series}/instances/{uids.instance}",
            headers={"Accept": "*/*"},
        )
    assert original in kept.content and forged not in kept.content
    results = [
        (e["who"], e["result"])
        for e in AccessAudit(settings.access_audit_path).entries()
        if e["action"] == "store" and e["study"] == uids.study
    ]
    assert results == [("uploader", "stored"), ("uploader", "stored"), ("uploader", "refused")]


def test_replacing_is_a_setting_and_audited(settings: Settings) -> None:
    add_users(settings)
    settings.access.overwrite_instances = True
    running = _start(settings)
    try:
        original, uids = instance_bytes()
        changed, _ = instance_bytes(
            uids.study, uids.series, sop=uids.instance, patient_name="DOE^JANE"
        )
        with client(running.url, "admin") as admin:
            for data in (original, changed):
                body, headers = stow_body(data)
                assert (
                    admin.post("/dicom-web/studies", content=body, headers=headers).status_code
                    == 200
                )
            (study,) = admin.get(f"/dicom-web/studies?StudyInstanceUID={uids.study}").json()
    finally:
        running.stop()
    assert study["00100010"]["Value"] == [{"Alphabetic": "DOE^JANE"}]
    results = [
        e["result"]
        for e in AccessAudit(settings.access_audit_path).entries()
        if e["action"] == "store"
    ]
    assert results == ["stored", "replaced"]


def test_login_form_starts_a_session_valid_for_dicomweb_and_pages(service: WebService) -> None:
    with httpx.Client(base_url=service.url, timeout=30) as browser:
        page = browser.get("/login")
        assert page.status_code == 200
        assert 'name="username"' in page.text and 'name="password"' in page.text
        # A page asked for by a browser without a session goes to the login page.
        redirect = browser.get("/me", headers={"Accept": "text/html"})
        assert redirect.status_code == 303
        assert redirect.headers["location"] == "/login?next=/me"

        wrong = browser.post("/login", data={"username": "viewer", "password": "nope-nope"})
        assert wrong.status_code == 401
        assert SESSION_COOKIE not in browser.cookies

        signed_in = browser.post(
            "/login",
            data={"username": "viewer", "password": PASSWORD, "next": "/dicom-web/studies"},
        )
        assert signed_in.status_code == 303
        assert signed_in.headers["location"] == "/dicom-web/studies"
        cookie = signed_in.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
        assert browser.get("/dicom-web/studies").status_code == 200
        assert browser.get("/me").json()["name"] == "viewer"

        # An open redirect is not followed.
        away = browser.post(
            "/login",
            data={"username": "viewer", "password": PASSWORD, "next": "//evil.example/"},
        )
        assert away.headers["location"] == "/me"

        assert browser.post("/logout").status_code == 303
        browser.cookies.clear()
    with httpx.Client(base_url=service.url, timeout=30) as stranger:
        stranger.cookies.set(SESSION_COOKIE, "made-up-token")
        assert stranger.get("/dicom-web/studies").status_code == 401


def test_a_removed_users_session_ends(service: WebService, settings: Settings) -> None:
    from openjip.access import UserStore

    with httpx.Client(base_url=service.url, timeout=30) as browser:
        browser.post("/login", data={"username": "researcher", "password": PASSWORD})
        assert browser.get("/me").status_code == 200
        UserStore(settings.access_dir).remove("researcher")
        assert browser.get("/me").status_code == 401


def test_anonymous_access_needs_the_setting_and_loopback(settings: Settings) -> None:
    settings.access.allow_anonymous = True
    settings.web.host = "0.0.0.0"
    with pytest.raises(OpenAccessRefused, match="OPENJIP_ACCESS__ALLOW_ANONYMOUS"):
        WebService(settings).start()
    settings.web.host = "127.0.0.1"
    running = _start(settings)
    try:
        me = httpx.get(f"{running.url}/me", timeout=30).json()
        assert (me["kind"], me["roles"], me["projects"]) == ("anonymous", ["viewer"], ["default"])
        assert httpx.get(f"{running.url}/dicom-web/studies", timeout=30).status_code == 200
        stow = stow_body(instance_bytes()[0])
        assert (
            httpx.post(
                f"{running.url}/dicom-web/studies", content=stow[0], headers=stow[1], timeout=30
            ).status_code
            == 403
        )
    finally:
        running.stop()


def test_openjip_web_refuses_to_be_open_naming_the_setting(openjip_home: Path) -> None:
    script = Path(sys.executable).with_name("openjip")
    result = subprocess.run(
        [str(script), "web", "--host", "0.0.0.0", "--port", "0"],
        capture_output=True,
        text=True,
        env={**os.environ, "OPENJIP_ACCESS__ALLOW_ANONYMOUS": "true"},
        timeout=120,
        check=False,
    )
    assert result.returncode == 1
    assert "OPENJIP_ACCESS__ALLOW_ANONYMOUS" in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_metrics_need_the_token_or_an_admin_or_their_own_port(settings: Settings) -> None:
    add_users(settings)
    settings.web.metrics_token = SecretStr("scrape-me")
    settings.web.metrics_port = _free_port()
    running = _start(settings)
    try:
        url = f"{running.url}/metrics"
        assert httpx.get(url, timeout=30).status_code == 401
        assert httpx.get(url, auth=("viewer", PASSWORD), timeout=30).status_code == 403
        assert httpx.get(url, auth=("admin", PASSWORD), timeout=30).status_code == 200
        token = {"Authorization": "Bearer scrape-me"}
        assert "openjip_web_requests_total" in httpx.get(url, headers=token, timeout=30).text
        own_port = f"http://127.0.0.1:{settings.web.metrics_port}"
        assert httpx.get(f"{own_port}/metrics", timeout=30).status_code == 200
        # The metrics port serves nothing else.
        assert httpx.get(f"{own_port}/dicom-web/studies", timeout=30).status_code == 404
    finally:
        running.stop()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_an_admin_adds_and_moves_a_study_between_projects(
    service: WebService, settings: Settings
) -> None:
    from access_site import store_study

    study = store_study(settings, "p2")
    path = f"/dicom-web/studies?StudyInstanceUID={study.study}"
    with client(service.url, "viewer") as viewer:  # in p1
        assert viewer.get(path).json() == []
        refused = viewer.post(f"/admin/studies/{study.study}/projects", json={"projects": ["p1"]})
        assert refused.status_code == 403
        with client(service.url, "admin") as admin:
            added = admin.post(f"/admin/studies/{study.study}/projects", json={"projects": ["p1"]})
            assert added.json() == {"StudyInstanceUID": study.study, "projects": ["p1", "p2"]}
            assert len(viewer.get(path).json()) == 1
            moved = admin.put(f"/admin/studies/{study.study}/projects", json={"projects": ["p3"]})
            assert moved.json()["projects"] == ["p3"]
            assert viewer.get(path).json() == []
            unknown = admin.post("/admin/studies/1.2.3.4/projects", json={"projects": ["p1"]})
            assert unknown.status_code == 404
            bad = admin.post(f"/admin/studies/{study.study}/projects", json={"projects": ["a b"]})
            assert bad.status_code == 400
    actions = [e["action"] for e in AccessAudit(settings.access_audit_path).entries()]
    assert "add_study" in actions and "move_study" in actions
