"""Signed requests between sites: HTTP Message Signatures (RFC 9421) with the site's Ed25519 key,
made and checked by PyPI ``http-message-signatures``.

Every signature covers the method, the whole target URI (scheme, host, port, path *and* query),
the authority (``Host``), ``Date``, ``Content-Digest`` (RFC 9530, SHA-256 of the body, also of
an empty one) and ``Openjip-Audience`` — the site id of the site the request is meant for — with
the signature parameters ``created``, ``keyid`` (the caller's site id), ``alg``, ``tag`` and a
``nonce``. The callee accepts a request only when all of that is covered and verifies against the
key *it* stored for the caller, the audience is its own site id (so a request captured on its way
to one site is refused by every other site trusting the same caller, whatever ``Host`` header a
replayer writes), it is at most ``max_age`` old, and its nonce is new (:class:`NonceCache`).
"""

from __future__ import annotations

import datetime
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from email.utils import formatdate

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from http_message_signatures import (
    HTTPMessageSigner,
    HTTPMessageVerifier,
    HTTPSignatureKeyResolver,
    InvalidSignature,
    algorithms,
)

from openjip.federation.errors import FederationError
from openjip.federation.identity import SiteIdentity, decode_public_key
from openjip.federation.peers import Peer, PeerRegistry

AUDIENCE_HEADER = "Openjip-Audience"
SIGNATURE_TAG = "openjip-federation"
COVERED_COMPONENTS = (
    "@method",
    "@target-uri",
    "@authority",
    "date",
    "content-digest",
    AUDIENCE_HEADER.lower(),
)
CLOCK_SKEW_SECONDS = 5
"""How far in the future a signature's ``created`` may be (the library's default tolerance)."""


class AuthenticationFailed(FederationError):
    """The request is not from a known peer; ``status`` is 401 (no/bad proof), 403 (unknown
    site) or 503 (the replay cache is full: refused rather than risking a replay)."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


@dataclass
class _Request:
    """The parts of a request the signature library reads."""

    method: str
    url: str
    headers: dict[str, str] | _HeaderLines


@dataclass
class _HeaderLines:
    """Received header lines, repeated names kept (read-only)."""

    lines: list[tuple[str, str]]

    def items(self) -> Iterable[tuple[str, str]]:
        return self.lines

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(name for name, _ in self.lines))

    def __contains__(self, name: str) -> bool:
        return any(line.lower() == name.lower() for line, _ in self.lines)


class _OwnKey(HTTPSignatureKeyResolver):
    def __init__(self, key: Ed25519PrivateKey) -> None:
        self.key = key

    def resolve_private_key(self, key_id: str) -> Ed25519PrivateKey:
        return self.key


class _PeerKeys(HTTPSignatureKeyResolver):
    """Looks up the signer's key among the peers; remembers which peer (or stranger) it was."""

    def __init__(self, peers: PeerRegistry) -> None:
        self.peers = peers
        self.peer: Peer | None = None
        self.stranger: str | None = None

    def resolve_public_key(self, key_id: str) -> Ed25519PublicKey | None:
        self.peer = self.peers.by_site_id(key_id)
        if self.peer is None:
            self.stranger = key_id
            return None
        return decode_public_key(self.peer.public_key)


def sign_request(
    identity: SiteIdentity, method: str, url: str, audience: str, body: bytes = b""
) -> dict[str, str]:
    """Headers that prove this site sent ``method url`` with ``body`` to site ``audience``."""
    headers = {"Date": formatdate(usegmt=True), AUDIENCE_HEADER: audience}
    signer = HTTPMessageSigner(
        signature_algorithm=algorithms.ED25519, key_resolver=_OwnKey(identity.private_key)
    )
    signer.sign(
        _Request(method.upper(), url, headers),
        key_id=identity.site_id,
        nonce=secrets.token_urlsafe(18),
        tag=SIGNATURE_TAG,
        label="openjip",
        covered_component_ids=COVERED_COMPONENTS,
        body=body,
    )
    return headers


@dataclass
class NonceCache:
    """Nonces of accepted requests, per process, for as long as their signatures are valid.

    Bounded: entries leave when their signature's age passes ``max_age_seconds`` (plus the
    clock-skew tolerance); when ``capacity`` live entries are held, further requests are refused
    (503) rather than forgetting a nonce that could then be replayed. Kept in memory only: to
    close the window a restart would open, signatures created before the cache (the process)
    started are refused.
    """

    max_age_seconds: int
    capacity: int
    started: int = field(default_factory=lambda: int(time.time()))
    _expiry: OrderedDict[tuple[str, str], float] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def admit(self, site_id: str, nonce: str, created: int) -> None:
        """Record the nonce, or raise :class:`AuthenticationFailed` for a replay."""
        if created < self.started:
            raise AuthenticationFailed(
                401, "replay", "request was signed before this service started (possible replay)"
            )
        now = time.time()
        with self._lock:
            while self._expiry and next(iter(self._expiry.values())) < now:
                self._expiry.popitem(last=False)
            key = (site_id, nonce)
            if key in self._expiry:
                raise AuthenticationFailed(
                    401, "replay", "request was seen before (replayed nonce)"
                )
            if len(self._expiry) >= self.capacity:
                raise AuthenticationFailed(
                    503, "replay-cache-full", "too many signed requests in the time window; retry"
                )
            # A signature accepted now has created <= now + skew, so it is valid for at most
            # max_age + 2 * skew more seconds. Counting from arrival keeps expiry times in
            # insertion order: pruning from the front is enough.
            self._expiry[key] = now + self.max_age_seconds + 2 * CLOCK_SKEW_SECONDS

    def __len__(self) -> int:
        return len(self._expiry)


def authenticate(
    method: str,
    url: str,
    header_lines: list[tuple[str, str]],
    body: bytes,
    peers: PeerRegistry,
    *,
    own_site_id: str,
    nonces: NonceCache,
) -> Peer:
    """Return the peer that signed the request, or raise :class:`AuthenticationFailed`."""
    headers = _HeaderLines(header_lines)
    if "signature-input" not in headers or "signature" not in headers:
        raise AuthenticationFailed(
            401, "unsigned", "signed request required (RFC 9421 Signature-Input/Signature)"
        )
    keys = _PeerKeys(peers)
    verifier = HTTPMessageVerifier(signature_algorithm=algorithms.ED25519, key_resolver=keys)
    verifier.max_clock_skew = datetime.timedelta(seconds=CLOCK_SKEW_SECONDS)
    try:
        (result,) = verifier.verify(
            _Request(method.upper(), url, headers),
            max_age=datetime.timedelta(seconds=nonces.max_age_seconds),
            expect_tag=SIGNATURE_TAG,
            require_components=COVERED_COMPONENTS,
            body=body,
        )
    except (InvalidSignature, ValueError) as error:
        if keys.stranger is not None:
            raise AuthenticationFailed(
                403, "unknown-peer", f"site {keys.stranger} is not a peer of this site"
            ) from None
        raise AuthenticationFailed(
            401, "bad-signature", f"request signature does not verify: {error}"
        ) from None
    if keys.peer is None or not result.nonce:
        raise AuthenticationFailed(401, "bad-signature", "signature carries no nonce")
    audience = result.covered_components.get(f'"{AUDIENCE_HEADER.lower()}"')
    if audience != own_site_id:
        raise AuthenticationFailed(
            401, "wrong-audience", f"request was signed for site {audience}, not for this site"
        )
    nonces.admit(keys.peer.site_id, result.nonce, int(result.parameters["created"]))
    return keys.peer
