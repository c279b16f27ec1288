"""One site's side of the federation: publish, pull, verify, approve and reject — each step
written to the audit log. The CLI and the HTTP service both work through :class:`Exchange`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from openjip.config.settings import FederationSettings
from openjip.federation.audit import AuditLog
from openjip.federation.bundle import OperatorPin, image_digest, parse_signed_bundle
from openjip.federation.canonical import canonical_json
from openjip.federation.client import PeerClient
from openjip.federation.errors import BundleRejected, FederationError
from openjip.federation.files import write_atomically
from openjip.federation.guard import check_no_foreign_paths, check_payload
from openjip.federation.identity import SiteIdentity, init_identity, load_identity
from openjip.federation.inbox import Inbox, PendingBundle
from openjip.federation.outbox import Outbox
from openjip.federation.peers import Peer, PeerRegistry
from openjip.federation.placement import approved_spec_path, check_workflow_id
from openjip.federation.questions import QuestionDesk
from openjip.federation.rounds import RoundDesk
from openjip.federation.screening import screen_document
from openjip.state.versions import StateTooNew, ensure_store
from openjip.statistics.loopback import LoopbackClient, secret_path


@dataclass(frozen=True)
class PullResult:
    """What happened to one bundle (or one peer) during a pull."""

    peer: str
    workflow_id: str
    outcome: str
    """``pending``, ``approved``, ``unchanged``, ``rejected`` or ``unreachable``."""
    message: str = ""


def referenced_operators(spec: dict[str, Any]) -> list[str]:
    """``name@version`` of every operator the spec's steps use, in order, without repeats."""
    references: list[str] = []
    for step in spec.get("steps") or []:
        reference = step.get("operator") if isinstance(step, dict) else None
        if isinstance(reference, str) and reference not in references:
            references.append(reference)
    return references


def _spec_errors(spec: dict[str, Any]) -> list[str]:
    from openjip.workflows import validate_spec

    return [f"{error.path}: {error.message}" for error in validate_spec(spec)]


class Exchange:
    """Publishing, pulling and deciding on workflow bundles for one site."""

    def __init__(
        self,
        home: Path,
        settings: FederationSettings,
        *,
        protected_workflow_dirs: list[Path] | None = None,
    ) -> None:
        from openjip.workflows.loader import PROJECT_WORKFLOWS

        try:  # the state of a newer openjip is refused before anything reads or writes it
            ensure_store(home, "federation")
        except StateTooNew as error:
            raise FederationError(str(error)) from error
        self.settings = settings
        self.directory = home / "federation"
        self.workflows_dir = home / "workflows"
        self.protected_workflow_dirs = (
            [PROJECT_WORKFLOWS] if protected_workflow_dirs is None else protected_workflow_dirs
        )
        """Folders of the site's own workflows, which no federated spec may replace."""
        self.peers = PeerRegistry(self.directory / "peers.json")
        self.outbox = Outbox(self.directory / "published")
        self.inbox = Inbox(self.directory / "inbox")
        self.audit = AuditLog(self.directory / "audit.jsonl")
        self.loopback = LoopbackClient(
            settings.site_web_url, secret_path(home, settings.loopback_secret_file)
        )
        self.questions = QuestionDesk(
            self.directory / "questions", self.audit, self.loopback, self.client
        )
        self.rounds = RoundDesk(self.audit)
        self._identity: SiteIdentity | None = None

    @property
    def identity(self) -> SiteIdentity:
        """This site's key pair (:class:`FederationError` before ``init``)."""
        if self._identity is None:
            self._identity = load_identity(self.directory)
        return self._identity

    def init(self, name: str) -> SiteIdentity:
        """Create this site's identity."""
        self._identity = init_identity(self.directory, name)
        self.audit.append("init", site_id=self._identity.site_id, name=name)
        return self._identity

    # Publishing ---------------------------------------------------------------------------

    def publish(self, spec_path: Path) -> dict[str, Any]:
        """Sign ``spec_path`` with the operators it uses and serve it to peers."""
        identity = self.identity
        try:
            spec = yaml.safe_load(spec_path.read_text())
        except (OSError, yaml.YAMLError) as error:
            raise FederationError(f"cannot read workflow spec {spec_path}: {error}") from error
        if not isinstance(spec, dict):
            raise FederationError(f"{spec_path} is not a workflow spec (a YAML mapping)")
        spec.pop("origin", None)
        errors = _spec_errors(spec)
        if errors:
            raise FederationError(f"{spec_path} is not a valid workflow spec: " + "; ".join(errors))
        try:
            check_no_foreign_paths(spec)
            screen_document(self.loopback, spec, what=f"workflow spec {spec_path.name}")
            pins = [self._operator_pin(reference) for reference in referenced_operators(spec)]
            bundle = self.outbox.publish(spec, pins, identity)
            check_payload(canonical_json(bundle), max_bytes=self.settings.max_payload_bytes)
        except BundleRejected as error:
            self.audit.append(
                "publish-refused",
                workflow_id=str(spec.get("id", "")),
                reason=error.reason,
                message=str(error),
            )
            raise FederationError(str(error)) from error
        body = bundle["body"]
        self.audit.append(
            "publish",
            workflow_id=body["workflow_id"],
            sequence=body["sequence"],
            signature=bundle["signature"],
        )
        return bundle

    # Receiving ----------------------------------------------------------------------------

    def _operator_pin(self, reference: str) -> OperatorPin:
        """This site's operator ``reference``, pinned to the digest of its allow-list entry or,
        without one, of its manifest's image."""
        from openjip.operators import find_operator

        name, _, version = reference.partition("@")
        try:
            manifest = find_operator(name, version).manifest
        except LookupError as error:
            raise FederationError(f"operator {reference} is not installed at this site") from error
        digest = self.settings.allowed_operators.get(reference) or image_digest(manifest.image)
        if digest is None:
            raise FederationError(
                f"operator {reference} has image {manifest.image!r} without a digest; pin it "
                "(repository:tag@sha256:<digest>) or list it in the allowed_operators setting"
            )
        image = manifest.image.split("@", 1)[0] + "@" + digest
        return OperatorPin(name=name, version=version, image=image, digest=digest)

    def _allowed_digest(self, reference: str) -> str | None:
        if self.settings.allowed_operators:
            return self.settings.allowed_operators.get(reference)
        try:
            return self._operator_pin(reference).digest
        except FederationError:
            return None

    def _target(self, body: dict[str, Any]) -> Path:
        """Where the bundle's spec would be written (refusing traversal and shadowing)."""
        return approved_spec_path(
            self.workflows_dir,
            self.protected_workflow_dirs,
            check_workflow_id(body),
            str(body["publisher"]["site_id"]),
        )

    def _verify_content(self, bundle: dict[str, Any]) -> None:
        body = bundle["body"]
        spec = body["spec"]
        self._target(body)
        check_no_foreign_paths(spec)
        screen_document(self.loopback, spec, what=f"workflow {body['workflow_id']!r}")
        errors = _spec_errors(spec)
        if errors:
            raise BundleRejected("schema", "workflow spec fails the schema: " + "; ".join(errors))
        pins: dict[str, OperatorPin] = {}
        for item in body.get("operators") or []:
            try:
                pin = OperatorPin.model_validate(item)
            except ValueError as error:
                raise BundleRejected("malformed", f"bad operator entry {item!r}") from error
            pins[pin.reference] = pin
        for reference in referenced_operators(spec):
            pinned = pins.get(reference)
            if pinned is None:
                raise BundleRejected("operator", f"operator {reference} is used but not pinned")
            allowed = self._allowed_digest(reference)
            if allowed is None:
                raise BundleRejected(
                    "operator-not-allowed", f"operator {reference} is not on this site's allow-list"
                )
            if allowed != pinned.digest:
                raise BundleRejected(
                    "operator-digest",
                    f"operator {reference} is pinned to {pinned.digest}, "
                    f"this site allows only {allowed}",
                )

    def receive(self, peer: Peer, raw: bytes) -> PullResult:
        """Verify one bundle from ``peer``; keep it pending or, by the peer's policy, approve it."""
        try:
            check_payload(raw, max_bytes=self.settings.max_payload_bytes)
            bundle = parse_signed_bundle(raw, peer)
            workflow_id = str(bundle["body"]["workflow_id"])
            if self.inbox.is_known(bundle):
                return PullResult(peer.name, workflow_id, "unchanged")
            self.inbox.check_newer(bundle)
            self._verify_content(bundle)
        except BundleRejected as error:
            self.audit.append(
                "verification-failed", peer=peer.name, reason=error.reason, message=str(error)
            )
            return PullResult(peer.name, "", "rejected", f"{error.reason}: {error}")
        body = bundle["body"]
        pending = self.inbox.hold(peer.name, bundle)
        self.audit.append(
            "fetch",
            peer=peer.name,
            workflow_id=workflow_id,
            sequence=body["sequence"],
            bundle_id=pending.bundle_id,
        )
        if peer.policy == "auto":
            self.approve(pending.bundle_id, decided_by=f"auto policy of peer {peer.name}")
            return PullResult(peer.name, workflow_id, "approved")
        return PullResult(peer.name, workflow_id, "pending", pending.bundle_id)

    def pull(self, peer_name: str | None = None) -> list[PullResult]:
        """Fetch every bundle of one peer (or all peers) and verify it."""
        peers = [self.peers.get(peer_name)] if peer_name else self.peers.entries()
        results: list[PullResult] = []
        for peer in peers:
            with self.client(peer) as client:
                try:
                    listing = client.list_bundles()
                    for entry in listing:
                        workflow_id = str(entry.get("workflow_id", ""))
                        results.append(self.receive(peer, client.fetch_bundle(workflow_id)))
                except FederationError as error:
                    self.audit.append("pull-failed", peer=peer.name, message=str(error))
                    results.append(PullResult(peer.name, "", "unreachable", str(error)))
        return results

    def client(self, peer: Peer) -> PeerClient:
        """A client signing this site's requests to ``peer`` (use it as a context manager)."""
        return PeerClient(
            self.identity,
            peer,
            max_bytes=self.settings.max_payload_bytes,
            ca_bundle=self.settings.ca_bundle,
        )

    # Deciding -----------------------------------------------------------------------------

    def approve(self, identifier: str, *, decided_by: str = "cli") -> Path:
        """Write the pending bundle's spec into the site's workflow folder (atomically)."""
        pending = self.inbox.get_pending(identifier)
        body = pending.bundle["body"]
        try:
            # Checked again: the site may have written a workflow of that id since the pull.
            target = self._target(body)
        except BundleRejected as error:
            self._audit_decision("approve-refused", pending, decided_by, reason=error.reason)
            raise FederationError(str(error)) from error
        spec = dict(body["spec"])
        spec["origin"] = {
            "peer": pending.peer,
            "site_id": body["publisher"]["site_id"],
            "sequence": body["sequence"],
            "bundle_id": pending.bundle_id,
            "signature": pending.bundle["signature"],
            "approved_at": int(time.time()),
        }
        write_atomically(target, yaml.safe_dump(spec, sort_keys=False).encode())
        self.inbox.mark_accepted(pending)
        self._audit_decision("approve", pending, decided_by, path=str(target))
        return target

    def reject(self, identifier: str, *, decided_by: str = "cli") -> PendingBundle:
        """Drop a pending bundle for good."""
        pending = self.inbox.get_pending(identifier)
        self.inbox.mark_rejected(pending)
        self._audit_decision("reject", pending, decided_by)
        return pending

    def _audit_decision(
        self, event: str, pending: PendingBundle, decided_by: str, **details: Any
    ) -> None:
        self.audit.append(
            event,
            peer=pending.peer,
            workflow_id=pending.workflow_id,
            sequence=pending.sequence,
            bundle_id=pending.bundle_id,
            decided_by=decided_by,
            **details,
        )
