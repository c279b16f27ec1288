"""The site's trusted peers: name, URL, public key and approval policy, kept in ``peers.json``."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

from pydantic import BaseModel, Field

from openjip.federation.errors import FederationError
from openjip.federation.files import read_json, write_json
from openjip.federation.identity import decode_public_key, site_id_of

Policy = Literal["manual", "auto"]
QuestionPolicy = Literal["manual", "auto", "refuse"]


class Peer(BaseModel):
    """A site this site trusts to publish workflows and may serve its own bundles to."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
    url: str
    public_key: str
    policy: Policy = "manual"
    questions: QuestionPolicy = "manual"
    """How this site answers the peer's statistics questions: a person decides (``manual``),
    at once (``auto``) or never (``refuse``)."""

    @property
    def site_id(self) -> str:
        """Id derived from the peer's public key."""
        return site_id_of(self.public_key)


class PeerRegistry:
    """Reads and writes the peer list of one site."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def entries(self) -> list[Peer]:
        """Every peer, by name."""
        return sorted(
            (Peer.model_validate(item) for item in read_json(self.path, [])),
            key=lambda peer: peer.name,
        )

    def get(self, name: str) -> Peer:
        """The peer called ``name``; :class:`FederationError` if unknown."""
        for peer in self.entries():
            if peer.name == name:
                return peer
        raise FederationError(f"no peer named {name!r} (see `openjip federation peer list`)")

    def by_site_id(self, site_id: str) -> Peer | None:
        """The peer whose key has this site id, or ``None``."""
        return next((peer for peer in self.entries() if peer.site_id == site_id), None)

    def add(
        self,
        name: str,
        url: str,
        public_key: str,
        policy: Policy = "manual",
        questions: QuestionPolicy = "manual",
    ) -> Peer:
        """Trust a new peer; the name and the key must not be known already."""
        decode_public_key(public_key)
        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise FederationError(f"peer URL must be http(s)://host[:port], not {url!r}")
        try:
            peer = Peer(
                name=name,
                url=url.rstrip("/"),
                public_key=public_key.strip(),
                policy=policy,
                questions=questions,
            )
        except ValueError as error:
            raise FederationError(f"invalid peer name {name!r}: letters, digits, . _ -") from error
        peers = self.entries()
        for known in peers:
            if known.name == name:
                raise FederationError(f"a peer named {name!r} exists already")
            if known.site_id == peer.site_id:
                raise FederationError(f"this key belongs to peer {known.name!r} already")
        self._save([*peers, peer])
        return peer

    def remove(self, name: str) -> None:
        """Stop trusting a peer."""
        peers = self.entries()
        remaining = [peer for peer in peers if peer.name != name]
        if len(remaining) == len(peers):
            raise FederationError(f"no peer named {name!r}")
        self._save(remaining)

    def _save(self, peers: list[Peer]) -> None:
        write_json(self.path, [peer.model_dump() for peer in peers])
