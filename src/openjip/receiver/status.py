"""The DIMSE statuses the receiver answers with, as data.

Codes come from PS3.4 Annex B (Storage Service Class) and PS3.7 Annex C; the error comment
(0000,0902) is a DICOM LO, so it is cut to 64 characters.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydicom.dataset import Dataset

from openjip.access import dimse


@dataclass(frozen=True)
class Status:
    """A C-STORE response status with its meaning."""

    code: int
    meaning: str

    @property
    def is_failure(self) -> bool:
        """Everything but success and warnings is a failure for the sender."""
        return self.code != SUCCESS.code and self.code & 0xF000 != 0xB000

    def response(self, comment: str = "") -> Dataset:
        """The status dataset pynetdicom puts into the response (with an error comment)."""
        ds = Dataset()
        ds.Status = self.code
        if comment:
            ds.ErrorComment = error_comment(comment)
        return ds


def error_comment(comment: str) -> str:
    """``comment`` as a valid Error Comment (0000,0902): an LO, so at most 64 characters and
    no backslash."""
    return comment.replace("\\", "/")[:64]


SUCCESS = Status(0x0000, "success: stored durably and indexed")
OUT_OF_RESOURCES = Status(
    0xA700, "refused: out of resources (store or index unavailable, disk full)"
)
CANNOT_UNDERSTAND = Status(0xC000, "error: cannot understand (unparseable data or UID missing)")
SOP_CLASS_NOT_SUPPORTED = Status(
    0x0122, "refused: SOP class of the request does not match its presentation context"
)
NOT_AUTHORIZED = Status(dimse.NOT_AUTHORIZED, "refused: not authorized (calling AE permissions)")

ALL_STATUSES = (
    SUCCESS,
    OUT_OF_RESOURCES,
    CANNOT_UNDERSTAND,
    SOP_CLASS_NOT_SUPPORTED,
    NOT_AUTHORIZED,
)
