"""The files ``openjip send`` sends: folders walked, each file described by its file meta
information (never decoded), and grouped so that no association needs more presentation
contexts than it may propose."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from pydicom import dcmread
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID

MAX_CONTEXTS = 128
"""Presentation contexts one association may propose (PS3.8: odd IDs 1-255)."""


@dataclass(frozen=True)
class DicomFile:
    """A Part-10 file to send, described by its file meta information."""

    path: Path
    sop_class: UID
    sop_instance: str
    transfer_syntax: UID
    size: int
    meta_matches: bool = True
    """Whether the file meta names the same SOP class and instance as the dataset."""

    @property
    def context(self) -> tuple[UID, UID]:
        """The presentation context the file needs: (SOP class, transfer syntax)."""
        return self.sop_class, self.transfer_syntax


def walk(paths: Iterable[Path]) -> Iterator[Path]:
    """Every file under ``paths`` (folders recursively, in name order)."""
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file())
        else:
            yield path


def describe(path: Path) -> DicomFile | str:
    """The file to send, or the reason it is not a DICOM file we can send."""
    try:
        ds = dcmread(path, stop_before_pixels=True, specific_tags=["SOPClassUID", "SOPInstanceUID"])
    except InvalidDicomError:
        return "not a DICOM Part-10 file"
    except (OSError, ValueError, EOFError, KeyError) as error:
        return f"unreadable DICOM header: {error}"
    sop_class = str(ds.get("SOPClassUID") or ds.file_meta.get("MediaStorageSOPClassUID") or "")
    sop_instance = str(ds.get("SOPInstanceUID") or "")
    transfer_syntax = str(ds.file_meta.get("TransferSyntaxUID") or "")
    if not (sop_class and sop_instance and transfer_syntax):
        return "lacks SOP Class UID, SOP Instance UID or Transfer Syntax UID"
    return DicomFile(
        path=path,
        sop_class=UID(sop_class),
        sop_instance=sop_instance,
        transfer_syntax=UID(transfer_syntax),
        size=path.stat().st_size,
        meta_matches=(
            ds.file_meta.get("MediaStorageSOPClassUID") == sop_class
            and ds.file_meta.get("MediaStorageSOPInstanceUID") == sop_instance
        ),
    )


def plan_associations(files: list[DicomFile]) -> list[list[DicomFile]]:
    """Group ``files`` so that each group needs at most :data:`MAX_CONTEXTS` contexts."""
    contexts = sorted({f.context for f in files})
    group_of = {context: i // MAX_CONTEXTS for i, context in enumerate(contexts)}
    groups: list[list[DicomFile]] = [[] for _ in range((len(contexts) - 1) // MAX_CONTEXTS + 1)]
    for f in files:
        groups[group_of[f.context]].append(f)
    return [group for group in groups if group]
