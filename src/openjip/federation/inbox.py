"""Bundles received from peers: verified, then pending approval, approved or rejected.

State under ``directory``: ``pending/<bundle_id>.json`` (peer name + bundle), ``accepted.json``
(per peer site and workflow: last accepted sequence and bundle id) and ``rejected.json``
(bundle ids a person rejected, so periodic pulls do not bring them back).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from openjip.federation.bundle import bundle_id
from openjip.federation.canonical import canonical_json
from openjip.federation.errors import BundleRejected, FederationError
from openjip.federation.files import read_json, write_atomically, write_json


@dataclass(frozen=True)
class PendingBundle:
    """A verified bundle waiting for a person's decision."""

    bundle_id: str
    peer: str
    bundle: dict[str, Any]

    @property
    def workflow_id(self) -> str:
        """Id of the workflow it carries."""
        return str(self.bundle["body"]["workflow_id"])

    @property
    def sequence(self) -> int:
        """Publication number at the publisher."""
        return int(self.bundle["body"]["sequence"])


class Inbox:
    """Verified bundles of peers and what this site decided about them."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._accepted_path = directory / "accepted.json"
        self._rejected_path = directory / "rejected.json"
        self._pending_dir = directory / "pending"

    def is_known(self, bundle: dict[str, Any]) -> bool:
        """``True`` for a bundle already pending, accepted or rejected (nothing new to do)."""
        identifier = bundle_id(bundle)
        body = bundle["body"]
        accepted = self._accepted().get(body["publisher"]["site_id"], {}).get(body["workflow_id"])
        return (
            (self._pending_dir / f"{identifier}.json").exists()
            or identifier in read_json(self._rejected_path, [])
            or (accepted is not None and accepted["bundle_id"] == identifier)
        )

    def check_newer(self, bundle: dict[str, Any]) -> None:
        """Refuse a bundle not newer than the last accepted one of its workflow from its peer."""
        body = bundle["body"]
        accepted = self._accepted().get(body["publisher"]["site_id"], {}).get(body["workflow_id"])
        if accepted is not None and body["sequence"] <= accepted["sequence"]:
            raise BundleRejected(
                "replay",
                f"bundle #{body['sequence']} of {body['workflow_id']!r} is not newer than "
                f"the accepted #{accepted['sequence']} (replay or downgrade)",
            )

    def hold(self, peer: str, bundle: dict[str, Any]) -> PendingBundle:
        """Keep a verified bundle until a person approves or rejects it."""
        pending = PendingBundle(bundle_id(bundle), peer, bundle)
        write_atomically(
            self._pending_dir / f"{pending.bundle_id}.json",
            canonical_json({"peer": peer, "bundle": bundle}),
        )
        return pending

    def pending(self) -> list[PendingBundle]:
        """Bundles waiting for a decision, oldest publication first."""
        items = []
        for path in sorted(self._pending_dir.glob("*.json")):
            data = json.loads(path.read_bytes())
            items.append(PendingBundle(path.stem, data["peer"], data["bundle"]))
        return sorted(items, key=lambda item: (item.peer, item.workflow_id, item.sequence))

    def get_pending(self, identifier: str) -> PendingBundle:
        """The pending bundle with this id (a unique prefix will do)."""
        matches = [item for item in self.pending() if item.bundle_id.startswith(identifier)]
        if len(matches) != 1:
            raise FederationError(
                f"no pending bundle {identifier!r} (see `openjip federation pending`)"
                if not matches
                else f"{identifier!r} matches several pending bundles; give more characters"
            )
        return matches[0]

    def mark_accepted(self, pending: PendingBundle) -> None:
        """Record the bundle as the accepted one and drop it (and older ones) from pending."""
        body = pending.bundle["body"]
        accepted = self._accepted()
        accepted.setdefault(body["publisher"]["site_id"], {})[body["workflow_id"]] = {
            "sequence": body["sequence"],
            "bundle_id": pending.bundle_id,
        }
        write_json(self._accepted_path, accepted)
        for item in self.pending():
            same_workflow = (
                item.bundle["body"]["publisher"]["site_id"] == body["publisher"]["site_id"]
                and item.workflow_id == pending.workflow_id
            )
            if same_workflow and item.sequence <= pending.sequence:
                (self._pending_dir / f"{item.bundle_id}.json").unlink(missing_ok=True)

    def mark_rejected(self, pending: PendingBundle) -> None:
        """Drop a pending bundle and remember not to take it again."""
        rejected = read_json(self._rejected_path, [])
        write_json(self._rejected_path, sorted({*rejected, pending.bundle_id}))
        (self._pending_dir / f"{pending.bundle_id}.json").unlink(missing_ok=True)

    def _accepted(self) -> dict[str, dict[str, dict[str, Any]]]:
        return read_json(self._accepted_path, {})
