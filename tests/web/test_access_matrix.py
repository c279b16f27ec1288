"""Every DICOMweb route x every role x own/other project x no/bad credentials, against a running
web service: QIDO answers from the caller's projects only, WADO of another project's object is
404, STOW needs a storing role and a project it may write, and without good credentials every
route is 401 with WWW-Authenticate."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from access_site import (
    ROLES,
    StoredStudy,
    add_users,
    client,
    instance_bytes,
    store_study,
    stow_body,
)

from openjip.config import Settings
from openjip.config.settings import WebSettings
from openjip.web import WebService


@dataclass
class Site:
    url: str
    settings: Settings
    own: StoredStudy
    """The study in p1, the project of every user."""
    other: StoredStudy
    """The study in p2."""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    home: Path = tmp_path_factory.mktemp("matrix-home")
    settings = Settings(home=home, web=WebSettings(port=0))
    add_users(settings)
    own, other = store_study(settings, "p1"), store_study(settings, "p2")
    service = WebService(settings)
    service.start()
    yield Site(service.url, settings, own, other)
    service.stop()


SEARCHES = {
    "/studies": "study",
    "/series": "series",
    "/instances": "instance",
    "/studies/{study}/series": "series",
    "/studies/{study}/instances": "instance",
    "/studies/{study}/series/{series}/instances": "instance",
}
RETRIEVALS = [
    "/studies/{study}",
    "/studies/{study}/series/{series}",
    "/studies/{study}/series/{series}/instances/{instance}",
    "/studies/{study}/metadata",
    "/studies/{study}/series/{series}/metadata",
    "/studies/{study}/series/{series}/instances/{instance}/metadata",
]
STORES = ["/studies", "/studies/{study}"]
READERS = {"admin", "researcher", "viewer"}
STORERS = {"admin", "uploader"}
UID_TAG = {"study": "0020000D", "series": "0020000E", "instance": "00080018"}


def _path(template: str, study: StoredStudy) -> str:
    return "/dicom-web" + template.format(
        study=study.study, series=study.series, instance=study.instance
    )


def _studies(site: Site, project: str) -> StoredStudy:
    return site.own if project == "own" else site.other


@pytest.mark.parametrize("project", ["own", "other"])
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("template", sorted(SEARCHES))
def test_qido_answers_from_the_callers_projects(
    site: Site, template: str, role: str, project: str
) -> None:
    target = _studies(site, project)
    level = SEARCHES[template]
    with client(site.url, role) as http:
        response = http.get(_path(template, target), headers={"Accept": "application/dicom+json"})
    if role not in READERS:
        assert response.status_code == 403, response.text
        return
    assert response.status_code == 200, response.text
    found = {item[UID_TAG[level]]["Value"][0] for item in response.json()}
    wanted = getattr(target, level)
    visible = role == "admin" or project == "own"
    assert (wanted in found) is visible
    if role != "admin":
        hidden = site.other
        assert getattr(hidden, level) not in found


@pytest.mark.parametrize("project", ["own", "other"])
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("template", RETRIEVALS)
def test_wado_of_another_projects_object_is_404(
    site: Site, template: str, role: str, project: str
) -> None:
    target = _studies(site, project)
    with client(site.url, role) as http:
        response = http.get(_path(template, target), headers={"Accept": "*/*"})
    if role not in READERS:
        assert response.status_code == 403, response.text
    elif role == "admin" or project == "own":
        assert response.status_code == 200, response.text
        assert target.instance in response.text or response.content.count(target.instance.encode())
    else:
        # The same answer as for an object that does not exist.
        assert response.status_code == 404, response.text
        assert response.json() == {"detail": f"nothing stored at {_path(template, target)}"}


@pytest.mark.parametrize("project", ["own", "other"])
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("template", STORES)
def test_stow_needs_a_storing_role_and_a_writable_project(
    site: Site, template: str, role: str, project: str
) -> None:
    target = _studies(site, project)
    data, new = instance_bytes(target.study, target.series)
    body, headers = stow_body(data)
    with client(site.url, role) as http:
        response = http.post(_path(template, target), content=body, headers=headers)
        if role not in STORERS:
            assert response.status_code == 403, response.text
            return
        if role == "admin" or project == "own":
            assert response.status_code == 200, response.text
            assert response.json()["00081199"]["Value"][0]["00081155"]["Value"] == [new.instance]
        else:
            assert response.status_code == 409, response.text
            (failed,) = response.json()["00081198"]["Value"]
            assert failed["00081197"]["Value"] == [0x0124]
    with client(site.url, "admin") as admin:
        found = admin.get(_path("/studies/{study}/series/{series}/instances", target)).json()
    stored = {item["00080018"]["Value"][0] for item in found}
    assert (new.instance in stored) is (role == "admin" or project == "own")


@pytest.mark.parametrize("credentials", ["none", "wrong password", "unknown user", "garbage"])
@pytest.mark.parametrize(
    ("method", "template"),
    [("GET", t) for t in sorted(SEARCHES) + RETRIEVALS] + [("POST", t) for t in STORES],
)
def test_without_good_credentials_every_route_is_401(
    site: Site, method: str, template: str, credentials: str
) -> None:
    headers = {"Accept": "application/dicom+json"}
    auth: tuple[str, str] | None = None
    if credentials == "wrong password":
        auth = ("viewer", "not the password")
    elif credentials == "unknown user":
        auth = ("nobody", "correct horse battery")
    elif credentials == "garbage":
        headers["Authorization"] = "Basic !!!not-base64"
    with httpx.Client(base_url=site.url, auth=auth, timeout=30) as http:
        response = http.request(method, _path(template, site.own), headers=headers)
    assert response.status_code == 401, response.text
    assert response.headers.get_list("www-authenticate")[0].startswith('Basic realm="openjip"')
    assert site.own.instance not in response.text


def test_every_route_of_the_app_is_protected_but_the_public_ones(site: Site) -> None:
    """No route escapes authentication by being forgotten: all but these answer 401."""
    from openjip.web import create_app

    public = {"/healthz", "/login", "/login/oidc", "/login/oidc/callback", "/logout"}
    public |= {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
    app = create_app(site.settings)
    with httpx.Client(base_url=site.url, timeout=30) as http:
        for route in app.routes:
            path = str(getattr(route, "path", ""))
            if path in public:
                continue
            concrete = path.replace(":path}", "}").format(
                study=site.own.study,
                series=site.own.series,
                instance=site.own.instance,
                # The viewer's, frames', bulk data's and Images page's other path parameters.
                frames="1",
                tag="7FE00010",
                path="index.html",
                dag_id="ct-body-mask",
                run_id="manual__1",
                key="runs/ct-body-mask/manual__1/segment/all/seg.dcm",
            )
            for method in sorted(getattr(route, "methods", {"GET"}) - {"HEAD"}):
                response = http.request(method, concrete, headers={"Accept": "application/json"})
                assert response.status_code == 401, (method, path, response.status_code)


def test_decisions_are_audited(site: Site) -> None:
    from openjip.access import AccessAudit

    with client(site.url, "viewer") as http:
        http.get(_path("/studies/{study}", site.other), headers={"Accept": "*/*"})
    with client(site.url, "viewer", "Hunter2-not-it") as http:
        http.get("/dicom-web/studies")
    entries = list(AccessAudit(site.settings.access_audit_path).entries())
    assert {
        "who": "viewer",
        "kind": "user",
        "action": "get",
        "study": site.other.study,
        "result": "denied",
    }.items() <= entries[-2].items()
    assert (entries[-1]["who"], entries[-1]["action"], entries[-1]["result"]) == (
        "viewer",
        "authenticate",
        "denied",
    )
    assert "Hunter2-not-it" not in site.settings.access_audit_path.read_text()
