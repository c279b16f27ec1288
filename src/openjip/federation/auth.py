"""Signed requests between sites: the caller signs method, path, time and body hash with its
site key; the callee accepts only callers whose key is in its peer list.

Headers: ``X-Openjip-Site`` (caller's site id), ``X-Openjip-Time`` (UNIX seconds),
``X-Openjip-Signature`` (base64 Ed25519 over the string to sign).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping

from openjip.federation.errors import FederationError
from openjip.federation.identity import SiteIdentity, verify_signature
from openjip.federation.peers import Peer, PeerRegistry

SITE_HEADER = "X-Openjip-Site"
TIME_HEADER = "X-Openjip-Time"
SIGNATURE_HEADER = "X-Openjip-Signature"


class AuthenticationFailed(FederationError):
    """The request is not from a known peer; ``status`` is 401 (no/bad proof) or 403 (unknown)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _string_to_sign(method: str, path: str, timestamp: str, body: bytes) -> bytes:
    return "\n".join([method.upper(), path, timestamp, hashlib.sha256(body).hexdigest()]).encode()


def sign_request(
    identity: SiteIdentity, method: str, path: str, body: bytes = b""
) -> dict[str, str]:
    """Headers that prove this site sent the request."""
    timestamp = str(int(time.time()))
    return {
        SITE_HEADER: identity.site_id,
        TIME_HEADER: timestamp,
        SIGNATURE_HEADER: identity.sign(_string_to_sign(method, path, timestamp, body)),
    }


def authenticate(
    headers: Mapping[str, str],
    method: str,
    path: str,
    body: bytes,
    peers: PeerRegistry,
    *,
    max_age_seconds: int,
) -> Peer:
    """Return the peer that signed the request, or raise :class:`AuthenticationFailed`."""
    site_id = headers.get(SITE_HEADER)
    timestamp = headers.get(TIME_HEADER)
    signature = headers.get(SIGNATURE_HEADER)
    if not (site_id and timestamp and signature):
        raise AuthenticationFailed(401, "signed request required (X-Openjip-* headers missing)")
    try:
        age = abs(time.time() - int(timestamp))
    except ValueError:
        raise AuthenticationFailed(401, "X-Openjip-Time is not a UNIX time") from None
    if age > max_age_seconds:
        raise AuthenticationFailed(401, "request time is too far from ours (clock skew or replay)")
    peer = peers.by_site_id(site_id)
    if peer is None:
        raise AuthenticationFailed(403, f"site {site_id} is not a peer of this site")
    if not verify_signature(
        peer.public_key, _string_to_sign(method, path, timestamp, body), signature
    ):
        raise AuthenticationFailed(401, "request signature does not verify")
    return peer
