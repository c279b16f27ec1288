"""OHIF's study list against a site holding 2,000 studies (headless Chromium): it lists the
first 101 (what it asks for), newest first, pages forward and sorts, without a failed DICOMweb
request. OHIF sorts only the 101 studies it fetched, client-side; the site answers a study
search newest first, so those 101 are the newest of all 2,000 and the list's default order
(Study Date, descending) is the true order of the whole archive."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from pathlib import Path

import numpy as np
from browser import NetworkLog, log_in, wait_for
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By

from openjip.web import WebService

STUDIES = 2000
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"


def _write_studies(folder: Path) -> list[Path]:
    """One 16² CT image per study, patients ``Patient^0000`` to ``Patient^1999``."""
    folder.mkdir()
    pixels = np.zeros((16, 16), dtype=np.uint16).tobytes()
    paths = []
    for number in range(STUDIES):
        ds = Dataset()
        ds.PatientName, ds.PatientID = f"Patient^{number:04d}", f"P{number:04d}"
        ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
        ds.SOPInstanceUID, ds.SOPClassUID = generate_uid(), CT_IMAGE_STORAGE
        ds.StudyDate = f"2024{1 + number % 12:02d}{1 + number % 28:02d}"
        ds.StudyDescription, ds.Modality, ds.AccessionNumber = "CT Chest", "CT", f"A{number:05d}"
        ds.Rows = ds.Columns = 16
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.PixelData = pixels
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta.MediaStorageSOPClassUID = CT_IMAGE_STORAGE
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        path = folder / f"{number:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def _patients(driver: webdriver.Chrome) -> list[str]:
    """The patient names on the page of the study list, top to bottom."""
    cells = driver.find_elements(By.XPATH, "//td[starts-with(normalize-space(.), 'Patient, ')]")
    try:
        return [cell.text.strip() for cell in cells]
    except StaleElementReferenceException:
        return []


def _dates(driver: webdriver.Chrome) -> list[str]:
    """The study dates (YYYYMMDD) on the page of the study list, top to bottom."""
    cells = driver.find_elements(
        By.XPATH, "//td[starts-with(normalize-space(.), 'Patient, ')]/following-sibling::td[1]"
    )
    try:
        shown = [cell.text.strip() for cell in cells]
    except StaleElementReferenceException:
        return []
    return [datetime.datetime.strptime(day, "%d-%b-%Y").strftime("%Y%m%d") for day in shown]


def _body(driver: webdriver.Chrome) -> str:
    return str(driver.find_element(By.TAG_NAME, "body").text)


def test_study_list_of_2000_studies_lists_and_pages(
    viewer_site: WebService,
    doctor: tuple[str, str],
    tmp_path: Path,
    ingest: Callable[[list[Path]], list[str]],
    chromium: webdriver.Chrome,
) -> None:
    files = _write_studies(tmp_path / "studies")
    ingest(files)
    all_dates = sorted(
        (f"2024{1 + n % 12:02d}{1 + n % 28:02d}" for n in range(STUDIES)), reverse=True
    )
    network = NetworkLog(chromium)
    log_in(chromium, viewer_site.url, *doctor, then="/viewer/")
    wait_for(lambda: len(_patients(chromium)) >= 25, 90, "a page of the study list")
    # OHIF asks for 101 studies (one more than it shows as a complete list) and pages them.
    assert "of 101" in chromium.find_element(By.TAG_NAME, "body").text
    first_page = _patients(chromium)
    first_dates = _dates(chromium)
    # The newest 50 of all 2,000 studies, newest first (not the 101 oldest, sorted).
    assert first_dates == all_dates[: len(first_dates)] and len(first_dates) == 50
    chromium.find_element(By.XPATH, "//*[contains(text(), ' of 101')]/following::button[2]").click()
    wait_for(lambda: "51-100 of 101" in _body(chromium), 30, "the second page")
    second_page = _patients(chromium)
    assert second_page and not set(second_page) & set(first_page)
    assert _dates(chromium) == all_dates[50:100]
    # Sorting by patient (client-side, over the 101 fetched) puts them in name order.
    chromium.find_element(By.CSS_SELECTOR, "button[aria-label='Sort Patient']").click()
    wait_for(
        lambda: (names := _patients(chromium)) and names in (sorted(names), sorted(names)[::-1]),
        30,
        "the list sorted by patient",
    )
    assert _patients(chromium) != second_page
    assert any("/dicom-web/studies?" in e.url for e in network.dicomweb())
    failed = [f"{e.status or e.error} {e.url}" for e in network.dicomweb() if e.failed]
    assert failed == []
