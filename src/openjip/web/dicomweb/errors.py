"""DICOMweb errors: an HTTP status with a message for the client, as PS3.18 asks."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse

from openjip.index import InvalidQuery


class DicomWebError(Exception):
    """A request that cannot be served; ``status`` is the HTTP status (400, 404, 406, ...)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


async def dicomweb_error_handler(_: Request, error: Exception) -> JSONResponse:
    """Answer :class:`DicomWebError` with its status, an index's :class:`InvalidQuery` with
    400, each as ``{"detail": message}``."""
    status = error.status if isinstance(error, DicomWebError) else 400
    return JSONResponse({"detail": str(error)}, status_code=status)


HANDLED_ERRORS = (DicomWebError, InvalidQuery)
"""The exception classes :func:`dicomweb_error_handler` answers."""
