"""The published JSON schema of workflow specs, generated from :class:`WorkflowSpec`.

``python -m openjip.workflows.schema`` rewrites ``workflow.schema.json`` next to this module;
a test fails when the file and the model disagree. Peers and editors validate specs with the
file alone, without openjip installed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from openjip.workflows.spec import WorkflowSpec

SCHEMA_PATH = Path(__file__).with_name("workflow.schema.json")


def workflow_schema() -> dict[str, Any]:
    """The JSON schema (draft 2020-12) of a workflow spec."""
    return WorkflowSpec.model_json_schema(mode="validation")


def schema_text() -> str:
    """The schema as the file holds it."""
    return json.dumps(workflow_schema(), indent=2, sort_keys=True) + "\n"


def main() -> None:
    """Write the schema file."""
    SCHEMA_PATH.write_text(schema_text(), encoding="utf-8")
    print(f"wrote {SCHEMA_PATH}")


if __name__ == "__main__":
    main()
