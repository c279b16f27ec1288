"""Who sees what through the Images page and the viewer's resources: a researcher of project
p1 finds no p2 study on the Images page, gets 404 for a hand-made frames, rendered or
thumbnail URL of a p2 instance, cannot run a workflow on it, and needs to log in at all."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from access_site import PASSWORD, StoredStudy, client, store_study

from openjip.access import UserStore
from openjip.config import Settings
from openjip.web import WebService


@pytest.fixture
def site(settings: Settings) -> Iterator[tuple[str, StoredStudy, StoredStudy]]:
    UserStore(settings.access_dir).add("researcher", PASSWORD, "researcher", ["p1"])
    UserStore(settings.access_dir).add("viewer", PASSWORD, "viewer", ["p1", "p2"])
    own, other = store_study(settings, "p1"), store_study(settings, "p2")
    settings.web.port = 0
    service = WebService(settings)
    service.start()
    yield service.url, own, other
    service.stop()


def _instance(study: StoredStudy) -> str:
    return f"/dicom-web/studies/{study.study}/series/{study.series}/instances/{study.instance}"


def test_a_p1_researcher_sees_nothing_of_p2(site: tuple[str, StoredStudy, StoredStudy]) -> None:
    url, own, other = site
    with client(url, "researcher") as http:
        found = http.get("/images/api/search", params={"name": "doe"}).json()
        studies = {s["uid"] for p in found["patients"] for s in p["studies"]}
        assert studies == {own.study}
        assert http.get("/images/api/search", params={"project": "p2"}).json()["patients"] == []
        for path in ("/frames/1", "/rendered", "/thumbnail", "/bulkdata/7FE00010"):
            assert http.get(_instance(own) + path).status_code == 200, path
            hidden = http.get(_instance(other) + path)
            assert hidden.status_code == 404, path
            assert hidden.json() == {"detail": f"nothing stored at {_instance(other) + path}"}
        series_thumbnail = f"/dicom-web/studies/{other.study}/series/{other.series}/thumbnail"
        assert http.get(series_thumbnail).status_code == 404
        refused = http.post(
            "/images/api/runs", json={"workflow": "ct-body-mask", "studies": [other.study]}
        )
        assert refused.status_code == 400 and "no series" in refused.json()["detail"]


def test_a_viewer_may_look_but_not_run(site: tuple[str, StoredStudy, StoredStudy]) -> None:
    url, own, other = site
    with client(url, "viewer") as http:
        found = http.get("/images/api/search").json()
        assert {s["uid"] for p in found["patients"] for s in p["studies"]} == {
            own.study,
            other.study,
        }
        run = http.post("/images/api/runs", json={"workflow": "ct-body-mask", "series": ["1"]})
        assert run.status_code == 403
        cohort = http.post("/images/api/cohorts", json={"name": "mine", "series": [own.series]})
        assert cohort.status_code == 403


def test_without_a_login_the_page_sends_a_browser_to_it(
    site: tuple[str, StoredStudy, StoredStudy],
) -> None:
    url, _, _ = site
    page = httpx.get(f"{url}/images/", headers={"Accept": "text/html"})
    assert page.status_code == 303 and page.headers["location"] == "/login?next=/images/"
    assert httpx.get(f"{url}/images/api/search").status_code == 401
