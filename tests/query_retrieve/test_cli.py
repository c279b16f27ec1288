"""``openjip query --format`` and ``openjip retrieve`` on the test site."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pydicom
import pytest
from typer.testing import CliRunner

from openjip.cli.main import app

runner = CliRunner(env={"COLUMNS": "200"})


def test_query_as_csv(site_data) -> None:
    result = runner.invoke(
        app, ["query", "studies", "--patient-name", "compressed*", "--format", "csv"]
    )
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert sorted(row["PatientID"] for row in rows) == ["1CT1", "4MR1"]
    assert {row["ModalitiesInStudy"] for row in rows} == {"CT", "MR"}


@pytest.mark.parametrize("flags", [["--format", "json"], ["--json"]])
def test_query_as_json_and_the_json_alias(site_data, flags: list[str]) -> None:
    result = runner.invoke(app, ["query", "series", "--patient-name", "PHAN*", *flags])
    assert result.exit_code == 0, result.output
    (series,) = json.loads(result.stdout)
    assert series["SeriesInstanceUID"] == site_data.phantom_series
    assert series["NumberOfSeriesRelatedInstances"] == 24


def test_query_rejects_an_unknown_format(site_data) -> None:
    result = runner.invoke(app, ["query", "studies", "--format", "xml"])
    assert result.exit_code == 2
    assert "xml" in result.output


def test_retrieve_writes_the_study_as_stored(site_data, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = runner.invoke(
        app, ["retrieve", "--study", site_data.phantom_study, "--to", str(out), "--json"]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["instances"] == 24
    for name in summary["files"]:
        path = Path(name)
        assert path.parent == out / site_data.phantom_study / site_data.phantom_series
        assert path.read_bytes() == site_data.files[path.stem].read_bytes()


def test_retrieve_out_of_a_project_that_de_identifies_on_export(
    site_data, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENJIP_DEID__PROJECTS", json.dumps({"default": {"on_export": True}}))
    out = tmp_path / "out"
    result = runner.invoke(
        app, ["retrieve", "--study", site_data.phantom_study, "--to", str(out), "--json"]
    )
    assert result.exit_code == 0, result.output
    files = [Path(name) for name in json.loads(result.stdout)["files"]]
    assert len(files) == 24
    for path in files:
        dataset = pydicom.dcmread(path)
        assert dataset.PatientIdentityRemoved == "YES"
        assert path == out / dataset.StudyInstanceUID / dataset.SeriesInstanceUID / path.name
        assert site_data.phantom_study not in str(path)  # named by the new UIDs
        assert b"PHANTOM" not in path.read_bytes()
        assert path.stat().st_mode & 0o077 == 0
    # A secondary capture may not leave (suspected burned-in text): named, exit code 1.
    result = runner.invoke(
        app, ["retrieve", "--study", site_data.studies["ID1"], "--to", str(tmp_path / "sc")]
    )
    assert result.exit_code == 1
    assert "not written (export policy)" in result.output and "secondary capture" in result.output


def test_retrieve_of_one_series(site_data, tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "retrieve",
            "--study",
            site_data.phantom_study,
            "--series",
            site_data.phantom_series,
            "--to",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "retrieved 24 instances of 1 series" in result.stdout


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--study", "1.2.3.4"], 1, "nothing stored for study 1.2.3.4"),
        (["--study", "1.2.3.4", "--series", "1.2.3.5"], 1, "nothing stored for series 1.2.3.5"),
        (["--study", "not-a-uid"], 2, "--study invalid"),
    ],
)
def test_retrieve_errors_are_clear(site_data, tmp_path, args, code, message) -> None:
    result = runner.invoke(app, ["retrieve", *args, "--to", str(tmp_path / "out")])
    assert result.exit_code == code
    assert message in result.output
    assert not (tmp_path / "out").exists()
