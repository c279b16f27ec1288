"""The Ed25519 identity of a site: key pair on disk, site id, signing and verifying.

The site id is the first 32 hex digits of the SHA-256 of the raw public key, so an id cannot be
claimed without the key. The private key file is created with mode 0600 and never rewritten.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from openjip.federation.errors import FederationError
from openjip.federation.files import read_json, write_json

PRIVATE_KEY_FILE = "site.key"
IDENTITY_FILE = "site.json"


def encode_public_key(key: Ed25519PublicKey) -> str:
    """Base64 of the 32 raw bytes of the public key (what peers exchange)."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


def decode_public_key(text: str) -> Ed25519PublicKey:
    """Parse a public key given as base64 of 32 raw bytes; :class:`FederationError` if not."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)
    except (binascii.Error, ValueError) as error:
        raise FederationError(
            f"not an Ed25519 public key (base64 of 32 bytes expected): {text!r}"
        ) from error


def site_id_of(public_key: str) -> str:
    """The site id belonging to a base64 public key."""
    raw = base64.b64decode(public_key)
    return hashlib.sha256(raw).hexdigest()[:32]


def verify_signature(public_key: str, data: bytes, signature: str) -> bool:
    """``True`` when ``signature`` (base64) is the key's signature of ``data``."""
    try:
        decode_public_key(public_key).verify(base64.b64decode(signature, validate=True), data)
    except (InvalidSignature, binascii.Error, ValueError, FederationError):
        return False
    return True


@dataclass(frozen=True)
class SiteIdentity:
    """This site's name, id and key pair."""

    name: str
    private_key: Ed25519PrivateKey

    @property
    def public_key(self) -> str:
        """Base64 public key."""
        return encode_public_key(self.private_key.public_key())

    @property
    def site_id(self) -> str:
        """Id derived from the public key."""
        return site_id_of(self.public_key)

    def sign(self, data: bytes) -> str:
        """Base64 Ed25519 signature of ``data``."""
        return base64.b64encode(self.private_key.sign(data)).decode("ascii")


def init_identity(directory: Path, name: str) -> SiteIdentity:
    """Create the site's key pair in ``directory``; refuse to replace an existing one."""
    key_path = directory / PRIVATE_KEY_FILE
    if key_path.exists():
        raise FederationError(
            f"{key_path} exists already: this site has an identity "
            "(peers trust its public key; delete the file only to start a new identity)"
        )
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    private_key = Ed25519PrivateKey.generate()
    pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    descriptor = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(pem)
        handle.flush()
        os.fsync(handle.fileno())
    identity = SiteIdentity(name=name, private_key=private_key)
    write_json(
        directory / IDENTITY_FILE,
        {"name": name, "site_id": identity.site_id, "public_key": identity.public_key},
    )
    return identity


def load_identity(directory: Path) -> SiteIdentity:
    """Load the site's identity; tells to run ``openjip federation init`` when there is none."""
    key_path = directory / PRIVATE_KEY_FILE
    try:
        pem = key_path.read_bytes()
    except FileNotFoundError:
        raise FederationError(
            f"this site has no federation identity yet ({key_path} missing): "
            "run `openjip federation init`"
        ) from None
    private_key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(private_key, Ed25519PrivateKey):
        raise FederationError(f"{key_path} does not hold an Ed25519 private key")
    name = read_json(directory / IDENTITY_FILE, {}).get("name", "")
    return SiteIdentity(name=name, private_key=private_key)
