"""Operators: the ``operator.yaml`` model, finding operators, and running one as a local process.

An operator is a container image plus a manifest; :mod:`openjip.sdk` is what runs inside it.
The Kubernetes backend of a step lives in :mod:`openjip.runner`; this package gives it the
manifest and the contract.
"""

from openjip.operators.catalog import (
    Catalog,
    LoadedOperator,
    OperatorNotFound,
    check_folder,
    default_search_path,
    find_operator,
    load_operator,
    scan_operators,
)
from openjip.operators.local import StepFailed, StepResult, run_operator_locally
from openjip.operators.manifest import (
    MANIFEST_FILE,
    ManifestError,
    ManifestIssue,
    OperatorManifest,
    ParamSpec,
    Resources,
    parse_manifest,
    read_manifest,
)
from openjip.operators.params import ParamError, parse_assignments, resolve_params

__all__ = [
    "MANIFEST_FILE",
    "Catalog",
    "LoadedOperator",
    "ManifestError",
    "ManifestIssue",
    "OperatorManifest",
    "OperatorNotFound",
    "ParamError",
    "ParamSpec",
    "Resources",
    "StepFailed",
    "StepResult",
    "check_folder",
    "default_search_path",
    "find_operator",
    "load_operator",
    "parse_assignments",
    "parse_manifest",
    "read_manifest",
    "resolve_params",
    "run_operator_locally",
    "scan_operators",
]
