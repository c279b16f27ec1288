"""Where an approved federated spec may be written, and which workflows it may never replace.

A federated spec lands only at ``<workflows folder>/<spec id>.yaml``: the bundle's
``workflow_id`` must match the spec-id pattern and equal ``spec.id``, so no name can climb out
of the folder. It never replaces a site's own workflow: an id already used by a project
workflow (``dags/workflows``) or by a spec in the site folder that did not come from the same
peer site is refused — the DAG factory lets a later folder's spec of the same id win, so a
federated file of any name carrying such an id would otherwise shadow the site's own.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml

from openjip.federation.errors import BundleRejected
from openjip.workflows.spec import SPEC_ID_PATTERN

_SPEC_ID = re.compile(SPEC_ID_PATTERN.removesuffix("$") + r"\Z")


def check_workflow_id(body: dict[str, Any]) -> str:
    """The bundle's workflow id, once it is a valid spec id equal to ``spec.id``."""
    workflow_id, spec = body.get("workflow_id"), body.get("spec")
    if not isinstance(workflow_id, str) or not _SPEC_ID.match(workflow_id):
        raise BundleRejected(
            "workflow-id",
            f"workflow id {workflow_id!r} is not a spec id (lower case, digits, dashes)",
        )
    spec_id = spec.get("id") if isinstance(spec, dict) else None
    if spec_id != workflow_id:
        raise BundleRejected(
            "workflow-id", f"bundle names workflow {workflow_id!r} but carries spec {spec_id!r}"
        )
    return workflow_id


def _specs(folder: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    if not folder.is_dir():
        return
    for path in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]):
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            # A file nobody can read as a spec cannot be shadowed either.
            continue
        if isinstance(data, dict):
            yield path, data


def _owner(data: dict[str, Any]) -> str | None:
    """Site id of the peer a spec came from, ``None`` for the site's own."""
    origin = data.get("origin")
    return str(origin.get("site_id")) if isinstance(origin, dict) else None


def approved_spec_path(
    workflows_dir: Path,
    protected_dirs: Iterable[Path],
    workflow_id: str,
    publisher_site_id: str,
) -> Path:
    """The file a spec ``workflow_id`` from ``publisher_site_id`` is written to.

    Raises :class:`BundleRejected` (``shadowing``) when the id belongs to a workflow of this
    site or of another peer.
    """
    for folder in protected_dirs:
        for path, data in _specs(folder):
            if data.get("id") == workflow_id:
                raise BundleRejected(
                    "shadowing",
                    f"workflow {workflow_id!r} is this site's own ({path}); "
                    "a federated spec never replaces it",
                )
    for path, data in _specs(workflows_dir):
        same_id = data.get("id") == workflow_id or path.stem == workflow_id
        if same_id and _owner(data) != publisher_site_id:
            whose = "this site's own" if _owner(data) is None else "from another peer"
            raise BundleRejected(
                "shadowing",
                f"{path} holds a workflow of id {workflow_id!r} {whose}; "
                "a federated spec never replaces it (rename one of them first)",
            )
    target = (workflows_dir / f"{workflow_id}.yaml").resolve()
    if target.parent != workflows_dir.resolve():
        raise BundleRejected("workflow-id", f"{target} is outside {workflows_dir}")
    return target
