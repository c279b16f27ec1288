"""The Images page's API on a running web service over a real index and store: search by the
page's fields grouped by patient, selection resolved to series, run outputs downloadable, and
bad input answered 4xx with a reason."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pydicom
import pytest

from openjip.airflow.plugin import plugin_views
from openjip.cohorts.selection import Selection
from openjip.config import Settings
from openjip.index import MetadataIndex, open_index
from openjip.phantom import write_ct_series
from openjip.records import output_prefix
from openjip.storage import open_store


@pytest.fixture
def two_patients(
    tmp_path: Path, ingest: Callable[[list[Path]], list[str]]
) -> dict[str, list[Path]]:
    files = {
        "DOE-1": write_ct_series(
            tmp_path / "doe",
            slices=3,
            rows=32,
            columns=32,
            patient_id="DOE-1",
            patient_name="Doe^Jane",
        ),
        "ROE-2": write_ct_series(
            tmp_path / "roe",
            slices=2,
            rows=32,
            columns=32,
            patient_id="ROE-2",
            patient_name="Roe^Richard",
            seed=1,
        ),
    }
    for paths in files.values():
        ingest(paths)
    return files


def _series(path: Path) -> str:
    return str(pydicom.dcmread(path, stop_before_pixels=True).SeriesInstanceUID)


def test_search_groups_studies_by_patient(
    two_patients: dict[str, list[Path]], http: httpx.Client
) -> None:
    found = http.get("/images/api/search", params={"name": "doe"}).json()
    assert [patient["id"] for patient in found["patients"]] == ["DOE-1"]
    (study,) = found["patients"][0]["studies"]
    assert study["series"][0]["uid"] == _series(two_patients["DOE-1"][0])
    assert study["series"][0]["instances"] == 3
    everyone = http.get("/images/api/search", params={"modality": "ct"}).json()
    assert {patient["id"] for patient in everyone["patients"]} == {"DOE-1", "ROE-2"}
    assert http.get("/images/api/search", params={"from": "2030-01-01"}).json()["patients"] == []
    bad = http.get("/images/api/search", params={"to": "yesterday"})
    assert bad.status_code == 400 and "YYYY-MM-DD" in bad.json()["detail"]


def test_a_selection_resolves_to_series(
    two_patients: dict[str, list[Path]], settings: Settings
) -> None:
    index: MetadataIndex = open_index(settings)
    try:
        doe, roe = _series(two_patients["DOE-1"][0]), _series(two_patients["ROE-2"][0])
        study = str(pydicom.dcmread(two_patients["ROE-2"][0]).StudyInstanceUID)
        assert Selection(patients=["DOE-1"]).resolve(index) == [doe]
        assert Selection(studies=[study], series=[doe]).resolve(index) == [doe, roe]
        with pytest.raises(Exception, match="no series"):
            Selection(patients=["NOBODY"]).resolve(index)
    finally:
        index.close()


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        ({"series": ["1.2"]}, 400, "workflow"),
        ({"workflow": "ct-body-mask", "series": "1.2"}, 400, "list of strings"),
        ({"workflow": "ct-body-mask", "patients": ["NOBODY"]}, 400, "no series"),
        ({"workflow": "ct-body-mask", "series": ["1.2"], "params": []}, 400, "params"),
    ],
)
def test_bad_run_requests_say_why(
    http: httpx.Client, body: dict[str, object], status: int, reason: str
) -> None:
    answer = http.post("/images/api/runs", json=body)
    assert answer.status_code == status and reason in answer.json()["detail"]


def test_workflows_list_their_form(http: httpx.Client) -> None:
    workflows = {item["id"]: item for item in http.get("/images/api/workflows").json()}
    assert workflows["ct-body-mask"]["params"]["target"]["enum"] == ["body", "lungs"]


def test_non_dicom_outputs_download_and_nothing_else(
    http: httpx.Client, settings: Settings
) -> None:
    key = output_prefix("convert-to-nifti", "manual__1", "convert", "1.2.3") + "ct.nii.gz"
    open_store(settings).put(key, b"nifti bytes")
    answer = http.get(f"/images/results/{key}")
    assert answer.status_code == 200 and answer.content == b"nifti bytes"
    assert 'filename="ct.nii.gz"' in answer.headers["content-disposition"]
    assert http.get("/images/results/dicom/1.2/1.3/1.4.dcm").status_code == 404
    assert http.get(f"/images/results/{key}.missing").status_code == 404
    viewer = http.get("/images/runs/convert-to-nifti/manual__1/viewer")
    assert viewer.status_code == 404 and "no result" in viewer.json()["detail"]


def test_the_plugin_links_to_the_web_service(settings: Settings) -> None:
    settings.web.public_url = "https://pacs.example/web/"
    views = {view["destination"]: view for view in plugin_views(settings)}
    assert views["nav"]["href"] == "https://pacs.example/web/images/"
    assert views["dag_run"]["href"].endswith("/images/runs/{DAG_ID}/{RUN_ID}/viewer")


def test_cohorts_are_saved_listed_and_run_on(
    two_patients: dict[str, list[Path]], http: httpx.Client
) -> None:
    saved = http.post("/images/api/cohorts", json={"name": "chest 2024", "patients": ["DOE-1"]})
    assert saved.status_code == 201, saved.text
    (listed,) = http.get("/images/api/cohorts").json()
    assert listed["name"] == "chest 2024"
    assert listed["selection"]["patients"] == ["DOE-1"]
    empty = http.post("/images/api/cohorts", json={"name": "empty"})
    assert empty.status_code == 400 and "at least one" in empty.json()["detail"]
    bad_name = http.post("/images/api/cohorts", json={"name": "../x", "series": ["1.2"]})
    assert bad_name.status_code == 400 and "cohort name" in bad_name.json()["detail"]
    missing = http.post("/images/api/runs", json={"workflow": "ct-body-mask", "cohort": "nope"})
    assert missing.status_code == 400 and "no cohort called 'nope'" in missing.json()["detail"]
