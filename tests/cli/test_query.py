"""``openjip query`` and ``openjip index rebuild`` over a SQLite index filled by real ingest."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from openjip.cli.main import app
from openjip.config import Settings

runner = CliRunner(env={"COLUMNS": "200"})


def query_json(*args: str) -> list[dict[str, object]]:
    result = runner.invoke(app, ["query", *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_studies_as_json_with_dicom_keywords(filled_site: Settings) -> None:
    studies = query_json("studies")
    assert {s["PatientID"] for s in studies} == {"1CT1", "4MR1", "8NM1", "ID1", "id00001"}
    ct = next(s for s in studies if s["PatientID"] == "1CT1")
    assert ct["StudyDate"] == "20040119"
    assert ct["ModalitiesInStudy"] == ["CT"]
    assert ct["NumberOfStudyRelatedInstances"] == 1
    assert isinstance(ct["StudyInstanceUID"], str)


@pytest.mark.parametrize(
    ("args", "patients"),
    [
        (["--modality", "CT"], {"1CT1"}),
        (["--patient-id", "4MR1"], {"4MR1"}),
        (["--patient-name", "CompressedSamples^*"], {"1CT1", "4MR1", "8NM1"}),
        (["--patient-name", "?estrade*"], {"ID1"}),
        (["--study-date", "20040101-20041231"], {"1CT1", "4MR1", "8NM1"}),
        (["--study-date", "20040801-"], {"4MR1", "8NM1", "ID1"}),
        (["--study-date", "-20031231"], {"id00001"}),
        (["--study-date", "20030716"], {"id00001"}),
        (["--text", "Bone"], {"8NM1"}),
    ],
)
def test_series_filters(filled_site: Settings, args: list[str], patients: set[str]) -> None:
    assert {s["PatientID"] for s in query_json("series", *args)} == patients


def test_uid_filters_and_limit(filled_site: Settings) -> None:
    series = query_json("series")
    chosen = series[0]["SeriesInstanceUID"]
    instances = query_json("instances", "--series-uid", str(chosen))
    assert instances and all(i["SeriesInstanceUID"] == chosen for i in instances)
    assert all(str(i["object_key"]).startswith("dicom/") for i in instances)
    study = series[0]["StudyInstanceUID"]
    assert {s["StudyInstanceUID"] for s in query_json("studies", "--study-uid", str(study))} == {
        study
    }
    assert len(query_json("instances")) == 5
    assert len(query_json("instances", "--limit", "2")) == 2


def test_table_output(filled_site: Settings) -> None:
    result = runner.invoke(app, ["query", "series", "--modality", "MR"])
    assert result.exit_code == 0, result.output
    assert "1 series" in result.stdout
    assert "4MR1" in result.stdout
    assert "1CT1" not in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["studies", "--study-date", "2020"], "is not a date range"),
        (["studies", "--study-date", "20201301"], "is not a calendar date"),
        (["studies", "--study-date", "20201231-20200101"], "ends before it starts"),
        (["studies", "--limit", "0"], "'--limit': 0 is not in the range x>=1."),
        (["studies", "--limit", "ten"], "'--limit': 'ten' is not a valid integer"),
        (["series", "--format", "xml"], "'--format': 'xml' is not one of 'table', 'json', 'csv'."),
        (["patients"], "No such command"),
    ],
)
def test_bad_input_is_a_clear_error(settings: Settings, args: list[str], message: str) -> None:
    result = runner.invoke(app, ["query", *args])
    assert result.exit_code == 2
    assert message in result.output


def test_index_rebuild_restores_what_the_index_lost(filled_site: Settings) -> None:
    before = query_json("instances")
    filled_site.index_path.unlink()
    assert query_json("instances") == []
    result = runner.invoke(app, ["index", "rebuild"])
    assert result.exit_code == 0, result.output
    assert "indexed 5 of 5 objects" in result.stdout
    after = query_json("instances")
    key = "SOPInstanceUID"
    assert sorted(i[key] for i in after) == sorted(i[key] for i in before)  # type: ignore[type-var]


def test_index_rebuild_with_an_unusable_store_fails_clearly(settings: Settings) -> None:
    settings.storage_path.parent.mkdir(parents=True, exist_ok=True)
    settings.storage_path.write_text("a file where the store's directory should be")
    result = runner.invoke(app, ["index", "rebuild"])
    assert result.exit_code == 1
    assert "error: cannot open the store and index" in result.stderr


def test_console_script_prints_json(filled_site: Settings, openjip_script: Path) -> None:
    result = subprocess.run(
        [str(openjip_script), "query", "studies", "--modality", "NM", "--json"],
        capture_output=True,
        text=True,
        env={**os.environ, "OPENJIP_HOME": str(filled_site.home_dir)},
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert [s["PatientID"] for s in json.loads(result.stdout)] == ["8NM1"]
