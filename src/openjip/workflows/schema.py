"""The published JSON schema of workflow specs, generated from :class:`WorkflowSpec`, and the
spec reference of ``docs/workflows.md`` generated from that schema.

``python -m openjip.workflows.schema`` rewrites ``workflow.schema.json`` next to this module and
the reference section of the docs; tests fail when either disagrees with the model. Peers and
editors validate specs with the schema file alone, without openjip installed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from openjip.workflows.spec import WorkflowSpec

SCHEMA_PATH = Path(__file__).with_name("workflow.schema.json")
DOCS_PATH = Path(__file__).resolve().parents[3] / "docs" / "workflows.md"
REFERENCE_START = "<!-- spec-reference:start (generated: python -m openjip.workflows.schema) -->"
REFERENCE_END = "<!-- spec-reference:end -->"


def workflow_schema() -> dict[str, Any]:
    """The JSON schema (draft 2020-12) of a workflow spec."""
    return WorkflowSpec.model_json_schema(mode="validation")


def schema_text() -> str:
    """The schema as the file holds it."""
    return json.dumps(workflow_schema(), indent=2, sort_keys=True) + "\n"


def _type_of(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        return "`" + schema["$ref"].rsplit("/", 1)[-1] + "`"
    if "anyOf" in schema:
        kinds = [_type_of(option) for option in schema["anyOf"] if option.get("type") != "null"]
        return " or ".join(kinds)
    if "enum" in schema:
        return " \\| ".join(f"`{value}`" for value in schema["enum"])
    kind = schema.get("type", "any")
    if kind == "array":
        return f"list of {_type_of(schema.get('items', {}))}"
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        return f"map of {_type_of(schema['additionalProperties'])}"
    return str(kind)


def _table(title: str, schema: dict[str, Any], defs: dict[str, Any]) -> list[str]:
    required = set(schema.get("required", []))
    lines = [f"### {title}", "", schema.get("description", "").replace("\n", " "), ""]
    lines += ["| field | type | required | default | meaning |", "| --- | --- | --- | --- | --- |"]
    for name, field in schema.get("properties", {}).items():
        default = json.dumps(field["default"]).replace("|", "\\|") if "default" in field else ""
        needed = "yes" if name in required else ""
        meaning = field.get("description") or (
            defs.get(field.get("$ref", "").rsplit("/", 1)[-1], {}).get("description", "")
        )
        lines.append(f"| `{name}` | {_type_of(field)} | {needed} | {default} | {meaning} |")
    return [*lines, ""]


def reference_markdown() -> str:
    """The field tables of the spec, one per object of the schema, top level first."""
    schema = workflow_schema()
    defs = schema.get("$defs", {})
    lines = _table("WorkflowSpec (the document)", schema, defs)
    for name, definition in sorted(defs.items()):
        lines += _table(name, definition, defs)
    return "\n".join(lines).rstrip() + "\n"


def docs_with_reference(text: str) -> str:
    """``text`` of docs/workflows.md with its reference section regenerated."""
    head, _, rest = text.partition(REFERENCE_START)
    _, _, tail = rest.partition(REFERENCE_END)
    return f"{head}{REFERENCE_START}\n{reference_markdown()}{REFERENCE_END}{tail}"


def main() -> None:
    """Write the schema file and the reference section of docs/workflows.md."""
    SCHEMA_PATH.write_text(schema_text(), encoding="utf-8")
    print(f"wrote {SCHEMA_PATH}")
    if DOCS_PATH.exists():
        DOCS_PATH.write_text(docs_with_reference(DOCS_PATH.read_text(encoding="utf-8")))
        print(f"wrote the spec reference in {DOCS_PATH}")


if __name__ == "__main__":
    main()
