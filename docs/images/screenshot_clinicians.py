"""Takes the screenshots of docs/clinicians.md on a throw-away local site: the Images page in
Airflow's navigation, a search for a patient, a finished run, and its result in the viewer.

Needs Debian's ``chromium`` and ``chromium-driver``, PyPI ``selenium`` and the viewer
(``make viewer``). Starts the web service and Airflow as ``openjip site up`` does, stores a
synthetic chest CT of ``Doe^Jane``, then drives chromium through the path. Usage:
``.venv/bin/python docs/images/screenshot_clinicians.py`` (about two minutes).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ready
from selenium.webdriver.support.ui import Select, WebDriverWait

from openjip.access import UserStore
from openjip.airflow.local import AirflowComponent
from openjip.config import Settings
from openjip.config.settings import AirflowSettings, WebSettings
from openjip.index import open_index
from openjip.ingest import Ingestor
from openjip.phantom import write_ct_series
from openjip.storage import open_store
from openjip.web import WebService

OUT = Path(__file__).parent
USER, PASSWORD = "doctor", "screenshots only, thrown away"
VIEWER = Path(os.environ.get("OPENJIP_WEB__VIEWER_PATH", "~/.openjip/viewer")).expanduser()


def _chromium() -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--window-size=1400,900"):
        options.add_argument(argument)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def _store_patient(settings: Settings, folder: Path) -> None:
    index = open_index(settings)
    ingestor = Ingestor(open_store(settings), index)
    for path in write_ct_series(
        folder, slices=40, rows=256, columns=256, patient_id="DOE-1", patient_name="Doe^Jane"
    ):
        ingestor.ingest_file(path, source_ae="CT_SCANNER")
    index.close()


def _shot(browser: webdriver.Chrome, name: str) -> None:
    browser.save_screenshot(str(OUT / name))
    print(f"wrote {OUT / name}")


def _until(browser: webdriver.Chrome, condition: Callable[..., object], seconds: float) -> None:
    WebDriverWait(browser, seconds).until(condition)


def main() -> None:
    """Start a site, walk the clinician's path, save the screenshots."""
    home = Path(tempfile.mkdtemp(prefix="openjip-screenshots-"))
    settings = Settings(
        home=home,
        web=WebSettings(port=0, viewer_path=VIEWER),
        airflow=AirflowSettings(port=0, parallelism=2),
    )
    _store_patient(settings, home / "incoming")
    UserStore(settings.access_dir).add(USER, PASSWORD, "admin")
    web = WebService(settings)
    web.start()
    os.environ.update({"OPENJIP_HOME": str(home), "OPENJIP_WEB__PUBLIC_URL": web.url})
    airflow = AirflowComponent(settings)
    airflow.start()
    browser = _chromium()
    try:
        for url in (web.url + "/login", airflow.url + "/"):  # the same site user for both
            browser.get(url)
            _until(browser, ready.presence_of_element_located((By.NAME, "username")), 60)
            browser.find_element(By.NAME, "username").send_keys(USER)
            browser.find_element(By.NAME, "password").send_keys(PASSWORD)
            browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
            time.sleep(3)
        browser.get(airflow.url + "/plugin/openjip-images")
        _until(browser, ready.frame_to_be_available_and_switch_to_it((By.TAG_NAME, "iframe")), 60)
        browser.find_element(By.ID, "name").send_keys("doe")
        browser.find_element(By.ID, "search").click()
        series = (By.CSS_SELECTOR, "input[data-kind=series]")
        _until(browser, ready.element_to_be_clickable(series), 30)
        browser.find_element(*series).click()
        Select(browser.find_element(By.ID, "workflow")).select_by_value("ct-body-mask")
        time.sleep(2)  # thumbnails
        browser.switch_to.default_content()
        _shot(browser, "images-search.png")
        browser.switch_to.frame(browser.find_element(By.TAG_NAME, "iframe"))
        browser.find_element(By.ID, "run").click()
        _until(browser, ready.presence_of_element_located((By.ID, "open-viewer")), 300)
        browser.switch_to.default_content()
        _shot(browser, "images-run-finished.png")
        browser.switch_to.frame(browser.find_element(By.TAG_NAME, "iframe"))
        link = browser.find_element(By.ID, "open-viewer").get_attribute("href")
        browser.switch_to.default_content()
        browser.get(str(link))
        skip = (By.XPATH, "//*[normalize-space(text())='Skip all']")
        _until(browser, ready.element_to_be_clickable(skip), 90)
        browser.find_element(*skip).click()
        time.sleep(8)  # the SEG is fetched and drawn
        _shot(browser, "viewer-result.png")
    finally:
        browser.quit()
        airflow.stop()
        web.stop()


if __name__ == "__main__":
    main()
