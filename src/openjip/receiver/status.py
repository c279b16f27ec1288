"""The DIMSE statuses the receiver answers with, one table per service, as data.

Each status names its code in pynetdicom's table of that service (``pynetdicom.status``,
from PS3.4 Annex B and C and PS3.7 Annex C), which gives its category and meaning; a code
that is not in the service's table fails at import. The error comment (0000,0902) is a DICOM
LO, so it is cut to 64 characters.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydicom.dataset import Dataset
from pynetdicom.status import (
    QR_FIND_SERVICE_CLASS_STATUS,
    QR_MOVE_SERVICE_CLASS_STATUS,
    STATUS_SUCCESS,
    STORAGE_SERVICE_CLASS_STATUS,
    VERIFICATION_SERVICE_CLASS_STATUS,
)

from openjip.access import dimse


@dataclass(frozen=True)
class Status:
    """A response status of one service, with its category and meaning from that service's
    table."""

    code: int
    category: str
    meaning: str

    @classmethod
    def of(cls, table: dict[int, tuple[str, str]], code: int) -> Status:
        """The status ``code`` of the service whose table is ``table``."""
        category, meaning = table[code]
        return cls(code, category, meaning or category)

    @property
    def is_success(self) -> bool:
        """Success (0x0000)."""
        return self.category == STATUS_SUCCESS

    def response(self, comment: str = "") -> Dataset:
        """The status dataset pynetdicom puts into the response (with an error comment)."""
        ds = Dataset()
        ds.Status = self.code
        if comment:
            ds.ErrorComment = error_comment(comment)
        return ds


def error_comment(comment: str) -> str:
    """``comment`` as a valid Error Comment (0000,0902): an LO, so at most 64 characters of
    printable ASCII and no backslash."""
    printable = "".join(c if " " <= c <= "~" else "?" for c in comment)
    return printable.replace("\\", "/")[:64]


NOT_AUTHORIZED = Status(dimse.NOT_AUTHORIZED, "Failure", "Refused: not authorized")
"""Any service the calling AE may not use (PS3.7 C.5; see :mod:`openjip.access.dimse`)."""


class Echo:
    """C-ECHO (Verification, PS3.4 A.4)."""

    SUCCESS = Status.of(VERIFICATION_SERVICE_CLASS_STATUS, 0x0000)


class Store:
    """C-STORE (Storage, PS3.4 B.2.3)."""

    SUCCESS = Status.of(STORAGE_SERVICE_CLASS_STATUS, 0x0000)
    OUT_OF_RESOURCES = Status.of(STORAGE_SERVICE_CLASS_STATUS, 0xA700)
    """Store, index or disk unavailable or full; the sender may try again later."""
    CANNOT_UNDERSTAND = Status.of(STORAGE_SERVICE_CLASS_STATUS, 0xC000)
    """Unparseable data, a UID missing or invalid, a command field missing, a dataset that
    is not the instance the command names."""
    SOP_CLASS_NOT_SUPPORTED = Status.of(STORAGE_SERVICE_CLASS_STATUS, 0x0122)
    """The request's SOP class is not that of its presentation context."""


class Find:
    """C-FIND (Query/Retrieve, PS3.4 C.4.1.1.4)."""

    SUCCESS = Status.of(QR_FIND_SERVICE_CLASS_STATUS, 0x0000)
    PENDING = Status.of(QR_FIND_SERVICE_CLASS_STATUS, 0xFF00)
    CANCELLED = Status.of(QR_FIND_SERVICE_CLASS_STATUS, 0xFE00)
    OUT_OF_RESOURCES = Status.of(QR_FIND_SERVICE_CLASS_STATUS, 0xA700)
    IDENTIFIER_MISMATCH = Status.of(QR_FIND_SERVICE_CLASS_STATUS, 0xA900)
    UNABLE_TO_PROCESS = Status.of(QR_FIND_SERVICE_CLASS_STATUS, 0xC000)


class Retrieve:
    """C-MOVE and C-GET (Query/Retrieve, PS3.4 C.4.2.1.5 and C.4.3.1.4; the same codes)."""

    PENDING = Status.of(QR_MOVE_SERVICE_CLASS_STATUS, 0xFF00)
    CANCELLED = Status.of(QR_MOVE_SERVICE_CLASS_STATUS, 0xFE00)
    OUT_OF_RESOURCES = Status.of(QR_MOVE_SERVICE_CLASS_STATUS, 0xA701)
    """Refused: out of resources, unable to calculate the number of matches (index down)."""
    IDENTIFIER_MISMATCH = Status.of(QR_MOVE_SERVICE_CLASS_STATUS, 0xA900)
    UNABLE_TO_PROCESS = Status.of(QR_MOVE_SERVICE_CLASS_STATUS, 0xC000)
