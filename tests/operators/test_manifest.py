"""operator.yaml: the example manifests, the published schema, and errors that name their path."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from openjip.operators import (
    ManifestError,
    ParamError,
    check_folder,
    load_operator,
    parse_manifest,
    resolve_params,
)
from openjip.operators.catalog import REPO_OPERATORS_DIR
from openjip.operators.scaffold import dockerfile
from openjip.operators.schema import SCHEMA_PATH, manifest_json_schema, render_schema

EXAMPLES = ["deidentify", "dicom-to-nifti", "threshold-segmentation"]
DIGEST = "sha256:" + "ab" * 32


def valid() -> dict[str, Any]:
    """A small valid manifest to break one field at a time."""
    return {
        "name": "lung-volume",
        "version": "1.2.0",
        "description": "Measures the lungs.",
        "image": "registry.example.org:5000/team/lung-volume:1.2.0",
        "command": ["python", "main.py"],
        "input": {"kind": "dicom-series"},
        "output": {"kind": "json"},
        "params": {
            "threshold": {"type": "number", "default": -400, "minimum": -1024, "maximum": 0},
            "side": {"type": "string", "enum": ["left", "right", "both"], "default": "both"},
            "label": {"type": "string"},
        },
        "resources": {"cpu": "500m", "memory": "2Gi", "gpu": 1},
    }


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_operators_are_valid(name: str) -> None:
    operator = load_operator(REPO_OPERATORS_DIR / name)
    assert operator.manifest.name == name
    assert check_folder(operator) == []
    data = yaml.safe_load((operator.directory / "operator.yaml").read_text())
    jsonschema.Draft202012Validator(manifest_json_schema()).validate(data)


@pytest.mark.parametrize(
    ("name", "apt"), [("dicom-to-nifti", ("dcm2niix", "pigz")), ("threshold-segmentation", ())]
)
def test_example_dockerfiles_have_the_generated_shape(name: str, apt: tuple[str, ...]) -> None:
    operator = load_operator(REPO_OPERATORS_DIR / name)
    expected = dockerfile(name, operator.manifest.image, operator.manifest.command, apt)
    assert (operator.directory / "Dockerfile").read_text() == expected


@pytest.mark.parametrize("name", ["dicom-to-nifti", "threshold-segmentation"])
def test_dockerfiles_are_multi_stage_pinned_and_non_root(name: str) -> None:
    text = (REPO_OPERATORS_DIR / name / "Dockerfile").read_text()
    assert text.count("\nFROM ") == 2
    assert "ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm" in text
    assert "\nUSER 10001:10001\n" in text
    assert "COPY --from=sdk" in text


def test_deidentify_is_built_on_the_openjip_image_and_non_root() -> None:
    # It runs openjip.deid itself, so it cannot be a stdlib-only image with the sdk copied in.
    text = (REPO_OPERATORS_DIR / "deidentify" / "Dockerfile").read_text()
    assert text.count("\nFROM ") == 1
    assert "ARG OPENJIP_IMAGE=ghcr.io/openjip/openjip:0.3.0" in text
    assert "\nUSER 10001:10001\n" in text and "\nENTRYPOINT []\n" in text


def test_published_schema_matches_the_model() -> None:
    assert SCHEMA_PATH.read_text() == render_schema(), (
        "operator.schema.json is stale: run python -m openjip.operators.schema"
    )
    jsonschema.Draft202012Validator.check_schema(json.loads(SCHEMA_PATH.read_text()))


def test_valid_manifest_parses_with_its_values() -> None:
    manifest = parse_manifest(valid())
    assert manifest.ref == "lung-volume@1.2.0"
    assert manifest.resources.gpu == 1
    assert manifest.image_digest is None
    assert manifest.params["label"].required
    schema = manifest.params_json_schema()
    assert schema["required"] == ["label"]
    assert schema["properties"]["side"] == {
        "type": "string",
        "enum": ["left", "right", "both"],
        "default": "both",
    }


def test_image_pinned_by_digest() -> None:
    data = valid()
    data["image"] = f"ghcr.io/openjip/lung-volume:1.2.0@{DIGEST}"
    assert parse_manifest(data).image_digest == DIGEST
    data["image"] = f"ghcr.io/openjip/lung-volume@{DIGEST}"
    assert parse_manifest(data).image_digest == DIGEST


def test_numeric_cpu_becomes_a_quantity() -> None:
    data = valid()
    data["resources"]["cpu"] = 2
    assert parse_manifest(data).resources.cpu == "2"


def _break(path: str, value: Any) -> dict[str, Any]:
    data = valid()
    *parents, last = path.split(".")
    target = data
    for part in parents:
        target = target[part]
    if value is _DELETE:
        del target[last]
    else:
        target[last] = value
    return data


_DELETE = object()

INVALID = [
    ("name", "Lung_Volume", "name", "does not match"),
    ("name", _DELETE, "name", "required field is missing"),
    ("version", "1.2", "version", "does not match"),
    ("image", "lung-volume", "image", "needs a tag or a digest"),
    ("image", "Registry/Bad Name:1", "image", "not an image reference"),
    ("image", "ghcr.io/x/y:1@sha256:short", "image", "not an image reference"),
    ("command", [], "command", "at least 1"),
    ("command", ["python", ""], "command[1]", "at least 1 character"),
    ("input.kind", "dicom", "input.kind", "is not one of"),
    ("output.kind", "png", "output.kind", "is not one of"),
    ("resources.cpu", "two", "resources.cpu", "not a CPU quantity"),
    ("resources.memory", "2 GB", "resources.memory", "not a memory quantity"),
    ("resources.gpu", -1, "resources.gpu", "greater than or equal to 0"),
    ("params.threshold.type", "float", "params.threshold.type", "is not one of"),
    ("params.threshold.default", 50, "params.threshold", "default 50 is above the maximum 0"),
    ("params.threshold.minimum", 10, "params.threshold", "minimum 10.0 is greater than maximum"),
    ("params.side.default", "middle", "params.side", "default 'middle' is not one of"),
    ("params.side.minimum", 1, "params.side", "only apply to integer and number"),
    ("params.side.enum", ["left", 2], "params.side", "enum value 2 is not of type string"),
    ("params.side.colour", "red", "params.side.colour", "unknown field"),
    ("entrypoint", "main.py", "entrypoint", "unknown field"),
]


@pytest.mark.parametrize(("field", "value", "path", "message"), INVALID)
def test_invalid_manifest_names_the_path(field: str, value: Any, path: str, message: str) -> None:
    with pytest.raises(ManifestError) as caught:
        parse_manifest(_break(field, value))
    issues = {issue.path: issue.message for issue in caught.value.issues}
    assert path in issues, issues
    assert message in issues[path]
    assert f"{path}: " in str(caught.value)


def test_invalid_manifests_are_also_rejected_by_the_published_schema() -> None:
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA_PATH.read_text()))
    for field, value, _, _ in INVALID:
        if field.startswith(("params.", "image", "resources.cpu", "resources.memory")):
            continue  # cross-field rules and reference grammar live in the model only
        assert list(validator.iter_errors(_break(field, value))), field


def test_every_problem_is_reported_at_once() -> None:
    data = valid()
    data["version"] = "one"
    data["output"] = {"kind": "png"}
    del data["description"]
    with pytest.raises(ManifestError) as caught:
        parse_manifest(data)
    assert {i.path for i in caught.value.issues} == {"version", "output.kind", "description"}


def test_yaml_syntax_error_names_line(tmp_path: Path) -> None:
    (tmp_path / "operator.yaml").write_text("name: x\ncommand: [python, main.py\n")
    with pytest.raises(ManifestError) as caught:
        load_operator(tmp_path)
    assert caught.value.issues[0].path.startswith("line 3")


@pytest.mark.parametrize("text", ["", "- a list\n", "just text\n"])
def test_manifest_that_is_not_a_mapping(tmp_path: Path, text: str) -> None:
    (tmp_path / "operator.yaml").write_text(text)
    with pytest.raises(ManifestError, match="must be a mapping"):
        load_operator(tmp_path)


def test_folder_without_manifest(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match=r"no operator\.yaml"):
        load_operator(tmp_path)


def test_folder_checks_name_missing_files(tmp_path: Path) -> None:
    (tmp_path / "operator.yaml").write_text(yaml.safe_dump(valid()))
    issues = check_folder(load_operator(tmp_path))
    assert {i.path for i in issues} == {"Dockerfile", "command[1]"}


def test_params_are_typed_defaulted_and_checked() -> None:
    manifest = parse_manifest(valid())
    assert resolve_params(manifest, {"label": "x", "threshold": "-300"}) == {
        "threshold": -300.0,
        "side": "both",
        "label": "x",
    }
    assert resolve_params(manifest, {"label": "x", "threshold": -300})["threshold"] == -300.0
    with pytest.raises(ParamError) as caught:
        resolve_params(manifest, {"threshold": "5", "side": "up", "colour": "red"})
    assert sorted(p.split(":")[0] for p in caught.value.problems) == [
        "colour",
        "label",
        "side",
        "threshold",
    ]
    assert "threshold: 5.0 is above the maximum 0" in caught.value.problems


@pytest.mark.parametrize(
    ("text", "value"), [("true", True), ("No", False), ("1", True), ("off", False)]
)
def test_boolean_params_from_text(text: str, value: bool) -> None:
    data = valid()
    data["params"] = {"flag": {"type": "boolean", "default": False}}
    assert resolve_params(parse_manifest(data), {"flag": text}) == {"flag": value}


def test_boolean_is_not_a_number() -> None:
    data = valid()
    data["params"] = {"n": {"type": "integer", "default": 1}}
    with pytest.raises(ParamError, match="not of type integer"):
        resolve_params(parse_manifest(data), {"n": True})
