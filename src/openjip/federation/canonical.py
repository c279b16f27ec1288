"""Canonical JSON: the one byte form of a value that signatures and audit hashes cover.

RFC 8785 (JSON Canonicalization Scheme, via PyPI ``rfc8785``): keys sorted by UTF-16 code
units, no insignificant white space, numbers in their ECMAScript form, integers within
±2^53 — so the same bundle serialises to the same bytes at the publisher and at every peer,
whatever JSON library either uses. Values outside that domain (NaN, huge integers) raise
``ValueError``.

Format version 1 of bundles and audit entries was hashed over ``json.dumps(sort_keys=True)``;
:func:`legacy_json` is kept only to verify audit entries written then.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import rfc8785


def canonical_json(value: Any) -> bytes:
    """Serialise ``value`` per RFC 8785."""
    return rfc8785.dumps(value)


def digest(value: Any) -> str:
    """Hex SHA-256 of the canonical form of ``value``."""
    return hashlib.sha256(canonical_json(value)).hexdigest()


def legacy_json(value: Any) -> bytes:
    """The sorted-key ``json.dumps`` form of format version 1 (audit verification only)."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")
