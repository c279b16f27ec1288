"""Canonical JSON: the one byte form of a value that signatures are computed over.

Keys sorted, no insignificant white space, UTF-8, no NaN/Infinity — so the same bundle always
serialises to the same bytes at the publisher and at every peer.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical_json(value: Any) -> bytes:
    """Serialise ``value`` canonically."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def digest(value: Any) -> str:
    """Hex SHA-256 of the canonical form of ``value``."""
    return hashlib.sha256(canonical_json(value)).hexdigest()
