"""Workflows as data: the spec model, its published JSON schema, validation with errors named by
their path in the document, and loading specs from the workflow folders.

Nothing here imports Airflow: the federation service and the CLI validate specs without it.
The DAG factory that turns specs into Airflow DAGs is :mod:`openjip.airflow.dags`.
"""

from openjip.workflows.loader import (
    SpecCatalog,
    discover_specs,
    find_spec,
    load_spec,
    workflow_dirs,
)
from openjip.workflows.spec import ParamSpec, StepSpec, WorkflowSpec
from openjip.workflows.validation import SpecError, SpecInvalid, parse_spec, validate_spec

__all__ = [
    "ParamSpec",
    "SpecCatalog",
    "SpecError",
    "SpecInvalid",
    "StepSpec",
    "WorkflowSpec",
    "discover_specs",
    "find_spec",
    "load_spec",
    "parse_spec",
    "validate_spec",
    "workflow_dirs",
]
