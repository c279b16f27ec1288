"""Talking to a peer over HTTP(S): signed requests (RFC 9421), responses read only up to the
size cap."""

from __future__ import annotations

import json
import ssl
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from openjip.federation.auth import sign_request
from openjip.federation.errors import FederationError
from openjip.federation.identity import SiteIdentity
from openjip.federation.peers import Peer


class PeerClient:
    """Talks to one peer's federation service on behalf of this site."""

    def __init__(
        self,
        identity: SiteIdentity,
        peer: Peer,
        *,
        max_bytes: int,
        ca_bundle: Path | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.identity = identity
        self.peer = peer
        self.max_bytes = max_bytes
        verify: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=str(ca_bundle)) if ca_bundle else True
        )
        self._client = httpx.Client(base_url=peer.url, timeout=timeout, verify=verify)

    def __enter__(self) -> PeerClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._client.close()

    def _get(self, path: str) -> bytes:
        """Body of a signed GET, cut one byte past the cap so the caller can tell it was too big."""
        status, body = self.request("GET", path)
        if status != 200:
            raise FederationError(
                f"peer {self.peer.name} answered {status} to {path}: "
                f"{body[:200].decode(errors='replace')}"
            )
        return body

    def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        """Status and body (cut one byte past the cap) of a signed request."""
        url = f"{self.peer.url}{path}"
        headers = sign_request(self.identity, method, url, audience=self.peer.site_id, body=body)
        if body:
            headers["Content-Type"] = "application/json"
        try:
            with self._client.stream(method, url, headers=headers, content=body) as response:
                received = bytearray()
                for chunk in response.iter_bytes():
                    received.extend(chunk)
                    if len(received) > self.max_bytes:
                        break
                return response.status_code, bytes(received[: self.max_bytes + 1])
        except httpx.HTTPError as error:
            raise FederationError(
                f"cannot reach peer {self.peer.name} at {self.peer.url}: {error}"
            ) from error

    def list_bundles(self) -> list[dict[str, Any]]:
        """The peer's published workflows (id, sequence, bundle id)."""
        raw = self._get("/v1/bundles")
        try:
            listing = json.loads(raw)
        except ValueError as error:
            raise FederationError(f"peer {self.peer.name} sent an unreadable listing") from error
        if not isinstance(listing, list):
            raise FederationError(f"peer {self.peer.name} sent an unreadable listing")
        return listing

    def fetch_bundle(self, workflow_id: str) -> bytes:
        """Raw bytes of one published bundle (verification is the caller's job)."""
        return self._get(f"/v1/bundles/{quote(workflow_id, safe='')}")
