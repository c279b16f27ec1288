"""The clinician's whole path on a running local site (web service with the viewer, real
Airflow with the openjip plugin), in headless Chromium: log in to Airflow, open Images from its
navigation, find a patient by name, select its CT series, run CT body mask, wait for success,
open the result in the viewer; the CT is drawn, the SEG loaded over it, and no DICOMweb request
failed. Airflow lists the plugin's Images page and Open in viewer tabs (web service links)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from browser import NetworkLog, log_in, wait_for, wait_for_ct_under_seg
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from openjip.airflow.local import AirflowComponent
from openjip.web import WebService

if TYPE_CHECKING:
    from conftest import CtWithSeg  # tests/viewer/conftest.py, only for the annotations


def _run_state(driver: webdriver.Chrome) -> str:
    """The Images page's line on the run it follows (redrawn every two seconds)."""
    try:
        return str(driver.find_element(By.ID, "run-state").text)
    except (NoSuchElementException, StaleElementReferenceException):
        return ""


def test_find_run_and_look_at_the_result(
    airflow: AirflowComponent,
    viewer_site: WebService,
    doctor: tuple[str, str],
    ct_with_seg: CtWithSeg,
    ingest: Callable[[list[Path]], list[str]],
    chromium: webdriver.Chrome,
) -> None:
    client = airflow.client()
    try:
        (plugin,) = [item for item in client.plugins() if item["name"] == "openjip"]
    finally:
        client.close()
    views = {(view["destination"], view["name"]): view["href"] for view in plugin["external_views"]}
    assert views[("nav", "Images")] == f"{viewer_site.url}/images/"
    run_viewer = f"{viewer_site.url}/images/runs/{{DAG_ID}}/{{RUN_ID}}/viewer"
    assert views[("dag_run", "Open in viewer")] == run_viewer
    assert views[("task_instance", "Open in viewer")] == run_viewer

    (ct_series,) = ingest(ct_with_seg.ct)
    network = NetworkLog(chromium)
    # The web service's session (its cookie is the host's, so Airflow's iframe sends it too).
    log_in(chromium, viewer_site.url, *doctor, then="/images/")
    # One login: Airflow's login page lets the signed-in browser straight through.
    chromium.get(f"{airflow.url}/auth/login?next={airflow.url}/")
    wait_for(lambda: "/login" not in chromium.current_url, 60, "Airflow's start page")
    assert not chromium.find_elements(By.NAME, "password")
    chromium.get(airflow.url + "/plugin/openjip-images")  # the Images entry of the navigation
    frame = wait_for(lambda: chromium.find_elements(By.TAG_NAME, "iframe"), 60, "the Images page")
    chromium.switch_to.frame(frame[0])
    wait_for(lambda: chromium.find_elements(By.ID, "name"), 60, "the search form")
    chromium.find_element(By.ID, "name").send_keys("doe")
    chromium.find_element(By.ID, "search").click()
    series_box = f"input[data-kind=series][data-uid='{ct_series}']"
    wait_for(lambda: chromium.find_elements(By.CSS_SELECTOR, series_box), 30, "the CT series")
    assert "Doe, Jane" in chromium.find_element(By.ID, "results").text
    chromium.find_element(By.CSS_SELECTOR, series_box).click()
    Select(chromium.find_element(By.ID, "workflow")).select_by_value("ct-body-mask")
    chromium.find_element(By.ID, "run").click()
    wait_for(lambda: _run_state(chromium).endswith(("success", "failed")), 300, "the run's end")
    assert _run_state(chromium).endswith("success"), chromium.find_element(By.ID, "run-status").text
    viewer_link = chromium.find_element(By.ID, "open-viewer").get_attribute("href")
    chromium.switch_to.default_content()
    chromium.get(str(viewer_link))
    wait_for_ct_under_seg(chromium)
    requested = network.dicomweb()
    assert any("/thumbnail" in exchange.url for exchange in requested)
    assert any(exchange.url.endswith("/metadata") for exchange in requested)
    failed = [f"{e.status or e.error} {e.url}" for e in requested if e.failed]
    assert failed == []
