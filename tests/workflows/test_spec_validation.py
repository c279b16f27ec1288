"""Workflow specs: the examples are valid, the published schema matches the model, and each kind
of broken spec is rejected with an error that names its place in the document."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from openjip.workflows import SpecInvalid, load_spec, validate_spec
from openjip.workflows.loader import PROJECT_WORKFLOWS, discover_specs
from openjip.workflows.schema import DOCS_PATH, SCHEMA_PATH, docs_with_reference, schema_text

EXAMPLES = sorted(PROJECT_WORKFLOWS.glob("*.yaml"))

VALID: dict[str, Any] = {
    "id": "lung-mask",
    "version": "1.0.0",
    "title": "Lung mask",
    "params": {
        "threshold": {"type": "number", "default": -400, "minimum": -1024, "maximum": 0},
        "target": {"type": "string", "enum": ["body", "lungs"], "default": "lungs"},
    },
    "steps": [
        {
            "name": "segment",
            "operator": "threshold-segmentation@0.1.0",
            "params": {
                "target": "{{ params.target }}",
                "lung_threshold_hu": "{{ params.threshold }}",
            },
        },
        {
            "name": "again",
            "operator": "threshold-segmentation@0.1.0",
            "depends_on": ["segment"],
        },
    ],
    "triggers": {"on_series_complete": [{"match": {"Modality": "CT"}}]},
}


def test_examples_exist_and_are_valid() -> None:
    assert {path.stem for path in EXAMPLES} >= {"convert-to-nifti", "ct-body-mask"}
    for path in EXAMPLES:
        spec = load_spec(path)
        assert spec.id == path.stem


def test_base_document_is_valid() -> None:
    assert validate_spec(VALID) == []


def test_published_schema_matches_the_model() -> None:
    assert SCHEMA_PATH.read_text(encoding="utf-8") == schema_text(), (
        "run: python -m openjip.workflows.schema"
    )


def test_examples_validate_against_the_published_schema() -> None:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    for path in EXAMPLES:
        jsonschema.validate(yaml.safe_load(path.read_text(encoding="utf-8")), schema)


def _broken(change: str) -> dict[str, Any]:
    doc = copy.deepcopy(VALID)
    step0 = doc["steps"][0]
    if change == "missing id":
        del doc["id"]
    elif change == "bad id":
        doc["id"] = "Lung Mask!"
    elif change == "unknown operator":
        step0["operator"] = "no-such-operator@9.9.9"
    elif change == "malformed operator":
        step0["operator"] = "threshold-segmentation"
    elif change == "bad param type":
        doc["params"]["threshold"]["type"] = "float"
    elif change == "default of wrong type":
        doc["params"]["threshold"]["default"] = "cold"
    elif change == "default out of range":
        doc["params"]["threshold"]["default"] = 50
    elif change == "default not in enum":
        doc["params"]["target"]["default"] = "liver"
    elif change == "cycle":
        step0["depends_on"] = ["again"]
    elif change == "unknown dependency":
        doc["steps"][1]["depends_on"] = ["segmnet"]
    elif change == "duplicate step":
        doc["steps"][1]["name"] = "segment"
    elif change == "unknown param reference":
        step0["params"]["target"] = "{{ params.organ }}"
    elif change == "bad regex":
        doc["triggers"]["on_series_complete"][0]["match"]["Modality"] = "CT("
    elif change == "unknown field":
        step0["image"] = "busybox"
    elif change == "no steps":
        doc["steps"] = []
    elif change == "operator param unknown":
        step0["params"]["lung_treshold"] = -300
    elif change == "operator param wrong type":
        step0["params"]["target"] = 3
    elif change == "reserved param name":
        doc["params"]["series"] = {"type": "string"}
    elif change == "cohort input without a cohort":
        doc["input"] = {"kind": "cohort"}
    return doc


CASES = {
    "missing id": ("id", "Field required"),
    "bad id": ("id", "pattern"),
    "unknown operator": ("steps[0].operator", "no-such-operator@9.9.9 not found"),
    "malformed operator": ("steps[0].operator", "pattern"),
    "bad param type": ("params.threshold.type", "'string', 'integer', 'number'"),
    "default of wrong type": ("params.threshold.default", "not of type number"),
    "default out of range": ("params.threshold.default", "greater than the maximum"),
    "default not in enum": ("params.target.default", "not one of"),
    "cycle": ("steps[0].depends_on", "cycle in depends_on: segment → again → segment"),
    "unknown dependency": ("steps[1].depends_on[0]", "unknown step 'segmnet'"),
    "duplicate step": ("steps[1].name", "duplicate step name 'segment'"),
    "unknown param reference": ("steps[0].params.target", "unknown param 'organ'"),
    "bad regex": ("triggers.on_series_complete[0].match.Modality", "bad regex"),
    "unknown field": ("steps[0].image", "Extra inputs are not permitted"),
    "no steps": ("steps", "at least 1 item"),
    "operator param unknown": ("steps[0].params.lung_treshold", "takes no param"),
    "operator param wrong type": ("steps[0].params.target", "not of type string"),
    "reserved param name": ("params.series", "reserved"),
    "cohort input without a cohort": ("input.cohort", "name of a saved cohort"),
}


@pytest.mark.parametrize("change", sorted(CASES))
def test_invalid_spec_names_the_error_path(change: str) -> None:
    path, words = CASES[change]
    errors = validate_spec(_broken(change))
    assert any(error.path == path and words in error.message for error in errors), errors


def test_every_error_is_reported_at_once() -> None:
    doc = _broken("cycle")
    doc["params"]["threshold"]["default"] = 50
    doc["steps"][0]["operator"] = "no-such-operator@1.0.0"
    paths = {error.path for error in validate_spec(doc)}
    assert {"steps[0].depends_on", "params.threshold.default", "steps[0].operator"} <= paths


def test_not_a_mapping() -> None:
    assert validate_spec(["id", "x"])[0].message.startswith("a workflow spec is a mapping")


def test_discovery_keeps_good_specs_next_to_bad_ones(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text(yaml.safe_dump(VALID))
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(_broken("cycle")))
    (tmp_path / "broken.yaml").write_text("id: [unclosed")
    catalog = discover_specs([tmp_path, tmp_path / "missing"])
    assert list(catalog.specs) == ["lung-mask"]
    rejected = {Path(invalid.source).name: invalid for invalid in catalog.rejected}
    assert set(rejected) == {"bad.yaml", "broken.yaml"}
    assert "not valid YAML" in str(rejected["broken.yaml"])
    with pytest.raises(SpecInvalid, match=r"steps\[0\]\.depends_on: cycle"):
        load_spec(tmp_path / "bad.yaml")


def test_docs_reference_is_generated_from_the_schema() -> None:
    text = DOCS_PATH.read_text(encoding="utf-8")
    assert docs_with_reference(text) == text, "run: python -m openjip.workflows.schema"
