"""Finding and reading workflow specs: the project's ``dags/workflows/`` and the site's own
``$OPENJIP_HOME/workflows``.

A folder may hold valid and invalid specs side by side; :func:`discover_specs` returns both so
the DAG factory can build the good ones and report the bad ones without one hiding the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from openjip.config import Settings
from openjip.workflows.spec import WorkflowSpec
from openjip.workflows.validation import OperatorLookup, SpecError, SpecInvalid, parse_spec

PROJECT_WORKFLOWS = Path(__file__).resolve().parents[3] / "dags" / "workflows"
"""``dags/workflows`` of the source tree this package runs from."""


def workflow_dirs(settings: Settings) -> list[Path]:
    """Folders searched for specs, project first; a site spec with the same id wins."""
    return [PROJECT_WORKFLOWS, settings.home_dir / "workflows"]


def load_spec(path: Path, *, operator_lookup: OperatorLookup | None = None) -> WorkflowSpec:
    """The spec in the YAML file ``path``; :class:`SpecInvalid` names every problem."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise SpecInvalid(str(path), [SpecError("", f"cannot read: {error.strerror}")]) from error
    except yaml.YAMLError as error:
        raise SpecInvalid(str(path), [SpecError("", f"not valid YAML: {error}")]) from error
    return parse_spec(data, source=str(path), operator_lookup=operator_lookup)


@dataclass
class SpecCatalog:
    """The valid specs by id and the files that were rejected."""

    specs: dict[str, WorkflowSpec] = field(default_factory=dict)
    paths: dict[str, Path] = field(default_factory=dict)
    rejected: list[SpecInvalid] = field(default_factory=list)


def discover_specs(
    dirs: list[Path], *, operator_lookup: OperatorLookup | None = None
) -> SpecCatalog:
    """Read every ``*.yaml``/``*.yml`` in ``dirs`` (missing folders are skipped)."""
    catalog = SpecCatalog()
    for folder in dirs:
        if not folder.is_dir():
            continue
        for path in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]):
            try:
                spec = load_spec(path, operator_lookup=operator_lookup)
            except SpecInvalid as invalid:
                catalog.rejected.append(invalid)
                continue
            catalog.specs[spec.id] = spec
            catalog.paths[spec.id] = path
    return catalog


def find_spec(settings: Settings, workflow_id: str) -> WorkflowSpec:
    """The valid spec with id ``workflow_id``; ``KeyError`` when there is none."""
    return discover_specs(workflow_dirs(settings)).specs[workflow_id]
