"""Signed bundles: a workflow spec, the operators it uses pinned by image digest, and who
published it when — signed over the canonical JSON of the body.

A bundle on the wire is ``{"body": {...}, "signature": "<base64>"}``. The signature is checked
against the key this site stored for the peer, never against a key the bundle brings along.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from typing import Any

from pydantic import BaseModel, Field

from openjip.federation.canonical import canonical_json, digest
from openjip.federation.errors import BundleRejected
from openjip.federation.identity import SiteIdentity, verify_signature
from openjip.federation.peers import Peer

BUNDLE_FORMAT = "openjip-bundle/2"
"""Version 2: signed over RFC 8785 canonical JSON. A change of the signed form is a new
version, so a peer tells an old bundle from a forged one."""
_RETIRED_FORMATS = {
    "openjip-bundle/1": "signed over sorted-key json.dumps, not RFC 8785 canonical JSON",
}
_DIGEST = re.compile(r"@(sha256:[0-9a-f]{64})$")


class OperatorPin(BaseModel):
    """An operator a workflow uses, pinned to one image digest."""

    name: str
    version: str
    image: str
    digest: str = Field(pattern=r"^sha256:[0-9a-f]{64}$")

    @property
    def reference(self) -> str:
        """``name@version`` as workflow steps name it."""
        return f"{self.name}@{self.version}"


def image_digest(image: str) -> str | None:
    """The ``sha256:...`` digest an image reference is pinned to, or ``None``."""
    match = _DIGEST.search(image)
    return match.group(1) if match else None


def make_bundle(
    spec: dict[str, Any], operators: list[OperatorPin], identity: SiteIdentity, sequence: int
) -> dict[str, Any]:
    """Sign a bundle of ``spec`` as publication number ``sequence`` of this workflow."""
    body = {
        "format": BUNDLE_FORMAT,
        "workflow_id": spec["id"],
        "workflow_version": str(spec.get("version", "")),
        "sequence": sequence,
        "publisher": {
            "site_id": identity.site_id,
            "name": identity.name,
            "public_key": identity.public_key,
        },
        "created_at": int(time.time()),
        "nonce": secrets.token_hex(16),
        "spec": spec,
        "operators": [pin.model_dump() for pin in operators],
    }
    return {"body": body, "signature": identity.sign(canonical_json(body))}


def bundle_id(bundle: dict[str, Any]) -> str:
    """Short stable id of a bundle (hash of its signed body)."""
    return digest(bundle["body"])[:16]


def parse_signed_bundle(raw: bytes, peer: Peer) -> dict[str, Any]:
    """Parse ``raw`` and check it is a bundle signed by ``peer``'s stored key.

    Raises :class:`BundleRejected` naming what is wrong.
    """
    try:
        bundle = json.loads(raw)
    except ValueError as error:
        raise BundleRejected("malformed", f"bundle is not JSON: {error}") from error
    if not (
        isinstance(bundle, dict)
        and isinstance(bundle.get("body"), dict)
        and isinstance(bundle.get("signature"), str)
    ):
        raise BundleRejected("malformed", "bundle must be {'body': {...}, 'signature': '...'}")
    body = bundle["body"]
    found = body.get("format")
    if found in _RETIRED_FORMATS:
        raise BundleRejected(
            "format",
            f"bundle format {found} ({_RETIRED_FORMATS[found]}) is no longer accepted; "
            f"the publisher must publish again with an openjip that writes {BUNDLE_FORMAT}",
        )
    if found != BUNDLE_FORMAT:
        raise BundleRejected(
            "format", f"unknown bundle format {found!r}; this site reads {BUNDLE_FORMAT}"
        )
    publisher = body.get("publisher")
    if not isinstance(publisher, dict) or publisher.get("public_key") != peer.public_key:
        raise BundleRejected(
            "wrong-key", f"bundle claims a publisher key that is not peer {peer.name!r}'s key"
        )
    try:
        signed = canonical_json(body)
    except ValueError as error:
        raise BundleRejected("malformed", f"bundle body cannot be serialised: {error}") from error
    if not verify_signature(peer.public_key, signed, bundle["signature"]):
        raise BundleRejected(
            "bad-signature", f"signature does not verify against peer {peer.name!r}'s key"
        )
    for field, kind in (("sequence", int), ("workflow_id", str), ("spec", dict)):
        if not isinstance(body.get(field), kind):
            raise BundleRejected("malformed", f"bundle body lacks a valid {field!r}")
    return bundle
