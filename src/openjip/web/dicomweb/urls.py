"""Path parameters and URLs of the DICOMweb routes."""

from __future__ import annotations

from fastapi import Request

from openjip.dicom.uids import is_valid_uid
from openjip.web.dicomweb.errors import DicomWebError

PREFIX = "/dicom-web"
"""Where the DICOMweb routes (QIDO-RS, WADO-RS, STOW-RS) are mounted."""


def dicomweb_base(request: Request) -> str:
    """Absolute base URL of the DICOMweb service as the client reached it."""
    return str(request.base_url).rstrip("/") + PREFIX


def require_uid(value: str) -> str:
    """``value`` if it is a valid UID, else 400 naming it."""
    if not is_valid_uid(value):
        raise DicomWebError(400, f"{value!r} is not a valid UID")
    return value
