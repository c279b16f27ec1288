"""The bundles this site publishes: the latest signed bundle of each workflow, one file each."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from openjip.federation.bundle import OperatorPin, bundle_id, make_bundle
from openjip.federation.canonical import canonical_json
from openjip.federation.errors import FederationError
from openjip.federation.files import write_atomically
from openjip.federation.identity import SiteIdentity

_WORKFLOW_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class Outbox:
    """Published bundles under ``directory/<workflow_id>.json``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, workflow_id: str) -> Path:
        if not _WORKFLOW_ID.match(workflow_id):
            raise FederationError(f"invalid workflow id {workflow_id!r}")
        return self.directory / f"{workflow_id}.json"

    def publish(
        self, spec: dict[str, Any], operators: list[OperatorPin], identity: SiteIdentity
    ) -> dict[str, Any]:
        """Sign and store the next publication of ``spec``; its sequence is one above the last."""
        previous = self.get(str(spec.get("id", "")))
        sequence = previous["body"]["sequence"] + 1 if previous else 1
        bundle = make_bundle(spec, operators, identity, sequence)
        self.store(bundle)
        return bundle

    def store(self, bundle: dict[str, Any]) -> None:
        """Write a signed bundle as the one served for its workflow."""
        write_atomically(self._path(bundle["body"]["workflow_id"]), canonical_json(bundle))

    def get(self, workflow_id: str) -> dict[str, Any] | None:
        """The bundle served for ``workflow_id``, or ``None``."""
        try:
            return json.loads(self._path(workflow_id).read_bytes())
        except FileNotFoundError:
            return None

    def raw(self, workflow_id: str) -> bytes | None:
        """The stored bytes of the bundle (served as they are, so signatures stay valid)."""
        try:
            return self._path(workflow_id).read_bytes()
        except FileNotFoundError:
            return None

    def summaries(self) -> list[dict[str, Any]]:
        """One line per published workflow: id, sequence, version, bundle id."""
        summaries = []
        for path in sorted(self.directory.glob("*.json")):
            bundle = json.loads(path.read_bytes())
            body = bundle["body"]
            summaries.append(
                {
                    "workflow_id": body["workflow_id"],
                    "workflow_version": body["workflow_version"],
                    "sequence": body["sequence"],
                    "bundle_id": bundle_id(bundle),
                    "created_at": body["created_at"],
                }
            )
        return summaries
