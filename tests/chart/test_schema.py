"""values.schema.json: it types every value, and each wrong values file fails naming the value."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import helm_python
import pytest
import yaml
from chart_objects import CHART_DIR

BAD_VALUES = sorted((Path(__file__).parent / "bad_values").glob("*.yaml"))


def expected_naming(path: Path) -> tuple[str, str]:
    """What a bad values file says the error names, in its first line:
    `# rejects: /a/b` or `# rejects: /a  (additional properties 'key')` for a misspelled key."""
    match = re.match(
        r"# rejects: (\S+)(?:\s+\(additional properties ('[^']+')\))?", path.read_text()
    )
    assert match, f"{path.name} must start with '# rejects: <json pointer>'"
    return match.group(1), match.group(2) or ""


def test_there_are_at_least_ten_wrong_values_files() -> None:
    assert len(BAD_VALUES) >= 10


@pytest.mark.parametrize("path", BAD_VALUES, ids=lambda p: p.stem)
def test_wrong_values_are_rejected_naming_the_value(chart: helm_python.Chart, path: Path) -> None:
    values = helm_python.values_from_yaml(path.read_text())
    pointer, key = expected_naming(path)
    where = "at ''" if pointer == "(root)" else f"at '{pointer}'"
    with pytest.raises(helm_python.HelmValuesError) as error:
        chart.render(values, name="site", namespace="openjip")
    assert where in str(error.value), str(error.value)
    assert key in str(error.value), str(error.value)


@pytest.mark.parametrize("path", BAD_VALUES[:2], ids=lambda p: p.stem)
def test_lint_reports_wrong_values(path: Path) -> None:
    report = helm_python.lint(CHART_DIR, helm_python.values_from_yaml(path.read_text()))
    assert any(m["severity"] == 3 for m in report["messages"]) or report["errors"], report


def resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target = node["$ref"].removeprefix("#/").split("/")
        referenced = schema
        for part in target:
            referenced = referenced[part]
        node = {**referenced, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def leaves(values: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    if isinstance(values, dict) and values:
        return [item for key, value in values.items() for item in leaves(value, (*path, key))]
    return [(path, values)]


def test_schema_covers_every_default_value() -> None:
    schema = json_schema()
    defaults = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    for path, _ in leaves(defaults):
        node = resolve(schema, schema)
        for key in path:
            assert node.get("additionalProperties") is not True, path
            properties = node.get("properties", {})
            if key in properties:
                node = resolve(schema, properties[key])
            else:
                extra = node.get("additionalProperties")
                assert isinstance(extra, dict), f"{'.'.join(path)} is not in values.schema.json"
                node = resolve(schema, extra)
        assert node.get("type") or node.get("oneOf") or "const" in node, path


def test_every_object_in_the_schema_refuses_unknown_keys() -> None:
    schema = json_schema()

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            if node.get("type") == "object" and "properties" in node:
                assert node.get("additionalProperties") is False, where
            for key, value in node.items():
                walk(value, f"{where}/{key}")
        elif isinstance(node, list):
            for index, value in enumerate(node):
                walk(value, f"{where}/{index}")

    walk(schema, "#")


def test_default_values_pass_the_schema(chart: helm_python.Chart) -> None:
    chart.validate_schema(chart.merge_values({}))


def json_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((CHART_DIR / "values.schema.json").read_text())
    return schema
