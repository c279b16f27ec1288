"""Studies in order at 2,000 of them, over QIDO-RS and the Images page of a running web service
on a real SQLite index: the order is the index's over everything that matches, so each page
continues the one before. (OHIF sorts a list itself only up to 100 studies; above that it
shows the archive's order, newest first here as OHIF's own default sort.)"""

from __future__ import annotations

import random

import httpx
import pytest

from openjip.config import Settings
from openjip.index import InstanceRecord, open_index

STUDIES = 2000
PATIENT_NAME, STUDY_DATE, STUDY_UID = "00100010", "00080020", "0020000D"


@pytest.fixture
def many_studies(settings: Settings) -> list[InstanceRecord]:
    """2,000 one-instance studies, their dates repeating (so ties go by UID), some without."""
    shuffle = random.Random(12)
    records = []
    for number in shuffle.sample(range(STUDIES), STUDIES):
        date = (
            ""
            if number % 97 == 0
            else f"20{10 + number % 15}{1 + number % 12:02d}{1 + number % 28:02d}"
        )
        records.append(
            InstanceRecord(
                SOPInstanceUID=f"1.2.9.{number}.1.1",
                SeriesInstanceUID=f"1.2.9.{number}.1",
                StudyInstanceUID=f"1.2.9.{number}",
                PatientName=f"{shuffle.choice('ABCDEFGH')}{number % 50:02d}^Test",
                PatientID=f"P{number % 300:03d}",
                StudyDate=date,
                Modality="CT",
                InstanceNumber=1,
                object_key=f"dicom/1.2.9.{number}/1.2.9.{number}.1/1.2.9.{number}.1.1.dcm",
            )
        )
    index = open_index(settings)
    index.upsert_instances(records)
    index.close()
    return records


def _ordered(records: list[InstanceRecord], key: str, *, descending: bool) -> list[str]:
    """Study UIDs by ``key`` (empty smallest), ties by UID ascending in either direction."""
    by_uid = sorted(records, key=lambda r: r.StudyInstanceUID)
    ordered = sorted(by_uid, key=lambda r: getattr(r, key), reverse=descending)
    return [r.StudyInstanceUID for r in ordered]


def _qido_pages(http: httpx.Client, **params: str) -> list[dict]:
    found: list[dict] = []
    while True:
        page = http.get(
            "/dicom-web/studies", params={**params, "limit": "101", "offset": str(len(found))}
        )
        assert page.status_code == 200, page.text
        if not page.json():
            return found
        found += page.json()


def test_qido_lists_2000_studies_newest_first_page_after_page(
    many_studies: list[InstanceRecord], http: httpx.Client
) -> None:
    found = _qido_pages(http)
    assert [study[STUDY_UID]["Value"][0] for study in found] == _ordered(
        many_studies, "StudyDate", descending=True
    )
    dates = [study[STUDY_DATE].get("Value", [""])[0] for study in found]
    assert dates[0] > dates[-200] > "" == dates[-1]  # studies without a date come last


@pytest.mark.parametrize("orderby", ["PatientName", "-PatientName"])
def test_qido_orders_by_what_orderby_names(
    many_studies: list[InstanceRecord], http: httpx.Client, orderby: str
) -> None:
    found = _qido_pages(http, orderby=orderby)
    expected = _ordered(many_studies, "PatientName", descending=orderby.startswith("-"))
    assert [study[STUDY_UID]["Value"][0] for study in found] == expected


@pytest.mark.parametrize(
    ("path", "orderby", "reason"),
    [
        ("/dicom-web/studies", "StudyDescription", "by one of StudyDate, PatientName"),
        ("/dicom-web/studies", "-", "by one of StudyDate"),
        ("/dicom-web/series", "PatientName", "orderby orders study searches only"),
    ],
)
def test_an_order_there_is_not_is_a_400_naming_those_there_are(
    http: httpx.Client, path: str, orderby: str, reason: str
) -> None:
    answer = http.get(path, params={"orderby": orderby})
    assert answer.status_code == 400
    assert reason in answer.json()["detail"]


def _images_studies(http: httpx.Client, **params: str) -> tuple[list[str], bool]:
    answer = http.get("/images/api/search", params=params)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    uids = [study["uid"] for patient in body["patients"] for study in patient["studies"]]
    return uids, body["truncated"]


def test_images_page_shows_the_first_200_of_the_whole_order(
    many_studies: list[InstanceRecord], http: httpx.Client
) -> None:
    newest, truncated = _images_studies(http)
    assert truncated
    assert sorted(newest) == sorted(
        _ordered(many_studies, "StudyDate", descending=True)[:200]
    )  # grouped by patient
    oldest, _ = _images_studies(http, sort="StudyDate")
    assert set(oldest) == set(_ordered(many_studies, "StudyDate", descending=False)[:200])
    names, _ = _images_studies(http, sort="-PatientName")
    assert set(names) == set(_ordered(many_studies, "PatientName", descending=True)[:200])
    patients = http.get("/images/api/search", params={"sort": "-PatientName"}).json()["patients"]
    shown = [patient["name"] for patient in patients]
    assert shown == sorted(shown, reverse=True)


def test_images_page_refuses_a_sort_there_is_not(http: httpx.Client) -> None:
    answer = http.get("/images/api/search", params={"sort": "StudyDescription"})
    assert answer.status_code == 400
    assert "sort must be one of StudyDate" in answer.json()["detail"]
