"""OHIF served at /viewer/ over the site's own DICOMweb, in headless Chromium: the study list,
a CT rendered, and the SEG threshold-segmentation wrote loaded over it, with no DICOMweb
request failing."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import httpx
from browser import NetworkLog, log_in, wait_for, wait_for_ct_under_seg
from selenium import webdriver

from openjip.access import UserStore
from openjip.config import Settings
from openjip.web import WebService

if TYPE_CHECKING:
    from conftest import CtWithSeg  # tests/viewer/conftest.py, only for the annotations


def test_viewer_files_config_and_client_routes(
    viewer_site: WebService, doctor: tuple[str, str]
) -> None:
    anonymous = httpx.get(f"{viewer_site.url}/viewer/viewer", headers={"Accept": "text/html"})
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/login")
    with httpx.Client(base_url=viewer_site.url, auth=doctor) as http:
        index = http.get("/viewer/")
        assert index.status_code == 200 and 'src="/viewer/app-config.js"' in index.text
        assert http.get("/viewer/viewer?StudyInstanceUIDs=1.2.3").text == index.text
        config = http.get("/viewer/app-config.js")
        assert config.headers["content-type"].startswith("text/javascript")
        assert '"routerBasename": "/viewer"' in config.text
        assert '"qidoRoot": "/dicom-web"' in config.text
        bundle = next(line for line in index.text.split('"') if "app.bundle" in line)
        answer = http.get(bundle)
        assert answer.status_code == 200 and "immutable" in answer.headers["cache-control"]
        assert '__webpack_require__.p = "/viewer/"' in answer.text
        assert http.get("/viewer/%2e%2e/%2e%2e/etc/passwd").text == index.text
        assert http.get("/viewer").headers["location"] == "/viewer/"


def test_missing_viewer_says_how_to_install_it(settings: Settings, tmp_path: Path) -> None:
    settings.web.port = 0
    settings.web.viewer_path = tmp_path / "nothing"
    UserStore(settings.access_dir).add("doctor", "a long enough password", "admin")
    service = WebService(settings)
    service.start()
    try:
        answer = httpx.get(
            f"{service.url}/viewer/viewer", auth=("doctor", "a long enough password")
        )
    finally:
        service.stop()
    assert answer.status_code == 503 and "make viewer" in answer.json()["detail"]


def test_study_list_shows_the_stored_study(
    viewer_site: WebService,
    doctor: tuple[str, str],
    stored_ct_with_seg: CtWithSeg,
    chromium: webdriver.Chrome,
) -> None:
    network = NetworkLog(chromium)
    log_in(chromium, viewer_site.url, *doctor, then="/viewer/")
    wait_for(lambda: "Doe, Jane" in chromium.page_source, 60, "the study in the study list")
    assert "CT\\SEG" in chromium.page_source or "CT/SEG" in chromium.page_source
    assert [e for e in network.dicomweb() if e.failed] == []


def test_ct_renders_and_the_seg_loads_over_it(
    viewer_site: WebService,
    doctor: tuple[str, str],
    stored_ct_with_seg: CtWithSeg,
    chromium: webdriver.Chrome,
) -> None:
    study, seg = stored_ct_with_seg.study, stored_ct_with_seg.seg_series
    network = NetworkLog(chromium)
    target = f"/viewer/viewer?StudyInstanceUIDs={study}&initialSeriesInstanceUID={seg}"
    log_in(chromium, viewer_site.url, *doctor, then=target)
    wait_for_ct_under_seg(chromium)
    requested = [e.url for e in network.dicomweb()]
    assert any(url.endswith(f"/instances/{stored_ct_with_seg.seg_instance}") for url in requested)
    assert any("/frames/" in url for url in requested)
    assert "Body mask" in chromium.page_source
    failed = [f"{e.status or e.error} {e.url}" for e in network.dicomweb() if e.failed]
    assert failed == []
