"""``openjip operator new | validate | run | list`` end to end on real DICOM."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pydicom
import pytest
import yaml
from typer.testing import CliRunner, Result

from openjip.cli.main import app

if TYPE_CHECKING:
    from conftest import Phantom  # tests/operators/conftest.py, only for the annotations


def openjip(*args: str | Path) -> Result:
    return CliRunner().invoke(app, ["operator", *map(str, args)])


def run_demo(tmp_path: Path, source: Path, *params: str) -> Result:
    """Scaffold ``demo`` in ``tmp_path`` and run it on ``source`` into ``tmp_path/o``."""
    if not (tmp_path / "demo").exists():
        assert openjip("new", "demo", "--dir", tmp_path).exit_code == 0
    options = [item for param in params for item in ("-p", param)]
    return openjip("run", tmp_path / "demo", "-i", source, "-o", tmp_path / "o", *options)


def test_new_validate_run_round_trip(
    openjip_home: Path, tmp_path: Path, phantom: Phantom, ct_slice_dir: Path
) -> None:
    created = openjip("new", "series-summary", "--dir", tmp_path / "ops")
    assert created.exit_code == 0, created.output
    folder = tmp_path / "ops" / "series-summary"
    assert {p.name for p in folder.iterdir()} == {
        "operator.yaml",
        "main.py",
        "requirements.txt",
        "Dockerfile",
    }

    validated = openjip("validate", folder)
    assert validated.exit_code == 0, validated.output
    assert "series-summary@0.1.0 is valid" in validated.output

    # One subfolder per series: the phantom series and pydicom-data's real CT slice.
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    (inputs / "phantom").symlink_to(phantom.folder)
    (inputs / "slice").symlink_to(ct_slice_dir)
    ran = openjip("run", folder, "--input", inputs, "--output", tmp_path / "out", "--json")
    assert ran.exit_code == 0, ran.output
    report = json.loads(ran.stdout)
    assert report["files"] == ["phantom/summary.json", "slice/summary.json"]
    summary = json.loads((tmp_path / "out" / "phantom" / "summary.json").read_text())
    assert summary["instances"] == len(phantom.sop_uids)
    assert summary["series"] == [phantom.series_uid]
    assert summary["modalities"] == ["CT"]
    real = json.loads((tmp_path / "out" / "slice" / "summary.json").read_text())
    source = pydicom.dcmread(next(ct_slice_dir.iterdir()))
    assert real["series"] == [source.SeriesInstanceUID]
    assert real["pixel_max"] == float(source.pixel_array.max())


def test_run_with_progress_and_params(tmp_path: Path, phantom: Phantom) -> None:
    ran = run_demo(tmp_path, phantom.folder, "pixel_statistics=false")
    assert ran.exit_code == 0, ran.output
    assert "demo@0.1.0 finished" in ran.stdout
    assert "summary.json" in ran.stdout
    assert "pixel_mean" not in json.loads((tmp_path / "o" / "summary.json").read_text())


def test_failing_step_exits_1_with_its_message(tmp_path: Path, phantom: Phantom) -> None:
    ran = run_demo(tmp_path, phantom.folder, "min_instances=999")
    assert ran.exit_code == 1
    assert "demo@0.1.0 failed" in ran.stderr
    assert "fewer than min_instances=999" in ran.stderr


@pytest.mark.parametrize(
    ("param", "problem"),
    [
        ("min_instances=abc", "min_instances: 'abc' is not an integer"),
        ("min_instances=0", "min_instances: 0 is below the minimum 1"),
        ("colour=red", "colour: unknown param"),
        ("no-equals-sign", "expected NAME=VALUE"),
    ],
)
def test_bad_params_exit_2(tmp_path: Path, phantom: Phantom, param: str, problem: str) -> None:
    ran = run_demo(tmp_path, phantom.folder, param)
    assert ran.exit_code == 2
    assert problem in ran.stderr
    assert not (tmp_path / "o").exists()


def test_missing_input_folder_exits_2(tmp_path: Path) -> None:
    ran = run_demo(tmp_path, tmp_path / "nope")
    assert ran.exit_code == 2
    assert "does not exist" in ran.stderr


def test_new_refuses_bad_names_and_existing_folders(tmp_path: Path) -> None:
    bad = openjip("new", "My_Operator", "--dir", tmp_path)
    assert bad.exit_code == 2
    assert "not a valid operator name" in bad.stderr
    assert openjip("new", "demo", "--dir", tmp_path).exit_code == 0
    again = openjip("new", "demo", "--dir", tmp_path)
    assert again.exit_code == 2
    assert "exists already" in again.stderr


def test_validate_lists_every_error_with_its_path(tmp_path: Path) -> None:
    openjip("new", "demo", "--dir", tmp_path)
    manifest_path = tmp_path / "demo" / "operator.yaml"
    manifest = yaml.safe_load(manifest_path.read_text())
    manifest["params"]["min_instances"]["default"] = 0
    manifest["output"]["kind"] = "png"
    manifest_path.write_text(yaml.safe_dump(manifest))
    (tmp_path / "demo" / "Dockerfile").unlink()

    text = openjip("validate", tmp_path / "demo")
    assert text.exit_code == 2
    assert "params.min_instances: default 0 is below the minimum 1" in text.stderr
    assert "output.kind: 'png' is not one of" in text.stderr

    as_json = openjip("validate", tmp_path / "demo", "--json")
    assert as_json.exit_code == 2
    report = json.loads(as_json.stdout)
    assert report["valid"] is False
    assert {e["path"] for e in report["errors"]} == {"params.min_instances", "output.kind"}


def test_validate_reports_missing_files(tmp_path: Path) -> None:
    openjip("new", "demo", "--dir", tmp_path)
    (tmp_path / "demo" / "main.py").unlink()
    ran = openjip("validate", tmp_path / "demo")
    assert ran.exit_code == 2
    assert "command[1]: main.py is not in the folder" in ran.stderr


def test_list_shows_repository_and_site_operators(openjip_home: Path) -> None:
    assert openjip("new", "site-local", "--dir", openjip_home / "operators").exit_code == 0
    listed = openjip("list", "--json")
    assert listed.exit_code == 0, listed.output
    refs = {f"{row['name']}@{row['version']}" for row in json.loads(listed.stdout)}
    assert {
        "dicom-to-nifti@0.1.0",
        "threshold-segmentation@0.1.0",
        "site-local@0.1.0",
    } <= refs

    (openjip_home / "operators" / "broken").mkdir()
    (openjip_home / "operators" / "broken" / "operator.yaml").write_text("name: Broken\n")
    listed = openjip("list")
    assert listed.exit_code == 2
    assert "threshold-segmentation@0.1.0" in listed.stdout
    assert "broken" in listed.stderr and "name: 'Broken' does not match" in listed.stderr


def test_non_empty_output_folder_exits_2(tmp_path: Path, phantom: Phantom) -> None:
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "old.json").write_text("{}")
    ran = run_demo(tmp_path, phantom.folder)
    assert ran.exit_code == 2
    assert "is not empty" in ran.stderr


def test_run_an_installed_operator_by_name(tmp_path: Path, small_ct_dir: Path) -> None:
    ran = openjip("run", "threshold-segmentation@0.1.0", "-i", small_ct_dir, "-o", tmp_path / "o")
    assert ran.exit_code == 0, ran.output
    assert (tmp_path / "o" / "seg-body.dcm").is_file()
    unknown = openjip("run", "no-such-operator", "-i", small_ct_dir, "-o", tmp_path / "p")
    assert unknown.exit_code == 2
    assert "operator no-such-operator not found" in unknown.stderr


def test_validate_can_require_a_pinned_image(tmp_path: Path) -> None:
    openjip("new", "demo", "--dir", tmp_path)
    ran = openjip("validate", tmp_path / "demo", "--require-digest")
    assert ran.exit_code == 2
    assert "image: not pinned by @sha256 digest" in ran.stderr
    manifest_path = tmp_path / "demo" / "operator.yaml"
    pinned = "registry.example.org/demo:0.1.0@sha256:" + "0f" * 32
    manifest_path.write_text(
        manifest_path.read_text().replace("registry.example.org/demo:0.1.0", pinned)
    )
    assert openjip("validate", tmp_path / "demo", "--require-digest").exit_code == 0
