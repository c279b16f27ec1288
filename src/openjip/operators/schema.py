"""The published JSON schema of ``operator.yaml``, generated from the manifest model.

``python -m openjip.operators.schema`` rewrites ``operator.schema.json`` next to this module;
a test fails when the file and the model disagree.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from openjip.operators.manifest import OperatorManifest

SCHEMA_PATH = Path(__file__).with_name("operator.schema.json")
SCHEMA_ID = "https://openjip.org/schemas/operator.schema.json"


def manifest_json_schema() -> dict[str, Any]:
    """The JSON schema (draft 2020-12) of an operator manifest."""
    schema = OperatorManifest.model_json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        **schema,
    }


def render_schema() -> str:
    """The schema file's exact text."""
    return json.dumps(manifest_json_schema(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    SCHEMA_PATH.write_text(render_schema(), encoding="utf-8")
    print(f"wrote {SCHEMA_PATH}")
