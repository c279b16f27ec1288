"""What may cross the federation boundary: small JSON/YAML workflow documents, never images.

:func:`check_payload` refuses oversized bodies and anything that carries DICOM — the Part-10
``DICM`` marker, DICOM JSON with bulk data, or base64 of either — and :func:`check_no_foreign_paths`
refuses specs naming object-store locations.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator
from typing import Any

from openjip.federation.errors import BundleRejected

_BASE64_RUN = re.compile(rb"[A-Za-z0-9+/]{96,}={0,2}")
_DICOM_JSON_BULK = re.compile(rb'"(InlineBinary|BulkDataURI)"\s*:')
_DICOM_JSON_ELEMENT = re.compile(rb'"[0-9A-Fa-f]{8}"\s*:\s*\{\s*"vr"\s*:')
# Object-store locations: S3-style URLs and our own key layout (dicom/<uid>/..., runs/<dag>/...).
_STORE_URL = re.compile(r"^(s3|s3a|s3n|minio|gs|gcs|az|wasbs?)://", re.IGNORECASE)
_STORE_KEY = re.compile(r"(^|/)(dicom/[0-9.]+/|runs/[^/\s]+/[^/\s]+/)")


def _looks_like_dicom(data: bytes) -> str | None:
    if b"DICM" in data:
        return "it contains the DICOM file marker 'DICM'"
    # DICOM JSON may hide inside a JSON string value, with its quotes escaped.
    data = data.replace(b'\\"', b'"')
    if _DICOM_JSON_BULK.search(data) or (
        _DICOM_JSON_ELEMENT.search(data) and b"7FE00010" in data.upper()
    ):
        return "it contains a DICOM JSON dataset with bulk data"
    return None


def _base64_runs(data: bytes) -> Iterator[bytes]:
    for match in _BASE64_RUN.finditer(data):
        run = match.group(0)
        try:
            yield base64.b64decode(run[: len(run) - len(run) % 4], validate=True)
        except (binascii.Error, ValueError):
            continue


def check_payload(data: bytes, *, max_bytes: int) -> None:
    """Raise :class:`BundleRejected` when ``data`` is too large or carries DICOM."""
    if len(data) > max_bytes:
        raise BundleRejected(
            "oversized", f"payload of {len(data)} bytes exceeds the {max_bytes}-byte limit"
        )
    reason = _looks_like_dicom(data)
    if reason is None:
        for decoded in _base64_runs(data):
            inner = _looks_like_dicom(decoded)
            if inner:
                reason = f"base64 in it decodes to DICOM ({inner})"
                break
    if reason:
        raise BundleRejected("dicom-payload", f"payload refused: {reason}; images never travel")


def strings_of(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """Every string in ``value`` with its JSON path (``/steps/0/name``)."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from strings_of(item, f"{path}/{key}")
    elif isinstance(value, list):
        for position, item in enumerate(value):
            yield from strings_of(item, f"{path}/{position}")


def check_no_foreign_paths(spec: dict[str, Any]) -> None:
    """Raise :class:`BundleRejected` when the spec names an object-store location."""
    for path, text in strings_of(spec, ""):
        if _STORE_URL.match(text.strip()) or _STORE_KEY.search(text):
            raise BundleRejected(
                "foreign-path",
                f"spec value at {path or '/'} names an object-store location ({text!r}); "
                "a federated workflow reads only what the receiving site selects",
            )
