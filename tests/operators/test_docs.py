"""docs/algorithm-developers.md: its example operator runs, its reference covers the schema."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

import pydicom
import pytest
from typer.testing import CliRunner

from openjip.cli.main import app
from openjip.operators.catalog import REPO_OPERATORS_DIR
from openjip.operators.schema import manifest_json_schema

if TYPE_CHECKING:
    from conftest import Phantom  # tests/operators/conftest.py, only for the annotations

DOC = REPO_OPERATORS_DIR.parent / "docs" / "algorithm-developers.md"
LUNG_HU = -850


def examples() -> dict[str, str]:
    """The files the guide shows, by the path in their ``<!-- example: PATH -->`` marker."""
    pattern = re.compile(r"<!-- example: (\S+) -->\n```\w+\n(.*?)```", re.S)
    return {m.group(1): m.group(2) for m in pattern.finditer(DOC.read_text())}


def test_the_guides_operator_validates_and_measures_the_phantom(
    tmp_path: Path, phantom: Phantom
) -> None:
    def openjip(*args: str | Path) -> str:
        result = CliRunner().invoke(app, ["operator", *map(str, args)])
        assert result.exit_code == 0, result.output
        return result.stdout

    openjip("new", "lung-volume", "--dir", tmp_path)
    files = examples()
    assert set(files) == {"lung-volume/operator.yaml", "lung-volume/main.py"}
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    openjip("validate", tmp_path / "lung-volume")
    openjip("run", tmp_path / "lung-volume", "-i", phantom.folder, "-o", tmp_path / "out")

    result = json.loads((tmp_path / "out" / "lung-volume.json").read_text())
    first = pydicom.dcmread(next(phantom.folder.iterdir()))
    voxel_ml = float(first.PixelSpacing[0]) ** 2 * float(first.SliceThickness) / 1000.0
    truth_ml = int((phantom.truth_hu == LUNG_HU).sum()) * voxel_ml
    assert result["volume_ml"] == pytest.approx(truth_ml, rel=0.02)


def test_reference_names_every_manifest_field() -> None:
    schema = manifest_json_schema()
    text = DOC.read_text()
    fields = set(schema["properties"])
    for definition in ("InputSpec", "OutputSpec", "Resources", "ParamSpec"):
        fields |= set(schema["$defs"][definition]["properties"])
    # A field shows as `name`, or inside a dotted path: `resources.cpu`, `input.kind`.
    missing = sorted(f for f in fields if not re.search(rf"`(\w+\.)?{f}(\.\w+)?`", text))
    assert not missing, f"docs/algorithm-developers.md does not describe {missing}"
