"""One instance de-identified: read, quarantined or walked, encoded, and checked.

The Pixel Data is never parsed or re-encoded: when it is the last top-level element of a
little-endian, not deflated source (almost every image), its encoded bytes are cut from the
source and appended to the de-identified header as they are, so the output's pixels are the
source's byte for byte and the work per instance is the header's. Otherwise pydicom encodes the
whole dataset. The check searches the output's bytes for every identifying value of the
source, all but the pixels (burned-in text is the quarantine's concern, and a three-letter
name occurs by chance in a few hundred kilobytes of pixels).
"""

from __future__ import annotations

import io
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import DeflatedExplicitVRLittleEndian

from openjip.deid.pixels import CannotClean, clean_pixels, matching_rule
from openjip.deid.walker import PIXEL_DATA, Deidentifier, InstanceResult

# Secondary capture classes (single and multi-frame): screenshots, scanned paper, text burned in.
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
BURNED_IN_MODALITIES = frozenset({"US"})
MEDIA_DIRECTORY = "1.2.840.10008.1.3.10"
PIXEL_TAG_BYTES = b"\xe0\x7f\x10\x00"
"""(7FE0,0010) encoded little endian."""
UNDEFINED_LENGTH, SEQUENCE_END = 0xFFFFFFFF, b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
LONG_LENGTH_VRS = frozenset({"OB", "OW", "OD", "OF", "OL", "OV", "SQ", "UC", "UN", "UR", "UT"})


class Refused(ValueError):
    """An instance that is not de-identified, with the reason (unreadable, a DICOMDIR, not
    writable de-identified, an identifying value left in the output)."""


class Quarantined(Refused):
    """An instance with suspected burned-in text: never written."""


def burned_in_reason(dataset: Dataset) -> str | None:
    """Why an instance probably has text in its pixels (None when it is not suspected)."""
    flag = str(dataset.get("BurnedInAnnotation", "")).upper()
    if flag == "YES":
        return "BurnedInAnnotation is YES"
    if flag == "NO" or PIXEL_DATA not in dataset:
        return None
    if str(dataset.get("SOPClassUID", "")).startswith(SECONDARY_CAPTURE):
        return "secondary capture (burned-in text is usual) without BurnedInAnnotation NO"
    if dataset.get("Modality") in BURNED_IN_MODALITIES:
        return f"modality {dataset.Modality} (burned-in text is usual), BurnedInAnnotation not NO"
    return None


@dataclass
class Leak:
    output: str
    offset: int
    hint: str
    """The leaked value masked (first character and length): the report must not leak it."""


def find_leaks(output: Path, data: bytes, identifying: set[str], pixels: bytes = b"") -> list[Leak]:
    """Every identifying value found in ``data`` (the bytes written to ``output``), all but
    the ``pixels`` (when they are part of ``data``)."""
    if pixels:
        start = data.rfind(pixels)
        data = data[:start] + data[start + len(pixels) :] if start >= 0 else data
    leaks = []
    for value in sorted(identifying):
        for encoded in {value.encode("utf-8"), value.encode("latin-1", "replace")}:
            offset = _find(data, encoded)
            if offset >= 0:
                leaks.append(Leak(str(output), offset, f"{value[0]}… ({len(value)} characters)"))
                break
    return leaks


def _find(data: bytes, value: bytes) -> int:
    """Where ``value`` occurs in ``data`` (-1: nowhere). A number counts only where no digit
    touches it: a time of day inside the 39 digits of a new ``2.25`` UID is chance, not a leak
    (inside a kept UID it is found: dots delimit it)."""
    if not value.isdigit():
        return data.find(value)
    found = re.search(rb"(?<![0-9])" + value + rb"(?![0-9])", data)
    return found.start() if found else -1


@dataclass
class Source:
    """A source instance: its dataset and, when they can be copied as they are, where its
    encoded Pixel Data starts (``pixels_at``; None: encoded by pydicom with the rest)."""

    dataset: Dataset
    data: bytes
    pixels_at: int | None = None


def _pixels_at(dataset: Dataset, data: bytes) -> int | None:
    """Offset of the top-level Pixel Data element in ``data`` when it is the last element of a
    little-endian, not deflated encoding, as read (not yet converted); else None."""
    meta = getattr(dataset, "file_meta", None)
    syntax = meta.get("TransferSyntaxUID") if meta is not None else None
    if syntax is None or syntax == DeflatedExplicitVRLittleEndian or not syntax.is_little_endian:
        return None
    raw = dataset.get_item(PIXEL_DATA)
    if not isinstance(raw, RawDataElement) or max(dataset.keys()) != PIXEL_DATA:
        return None
    if raw.is_implicit_VR != syntax.is_implicit_VR or not raw.is_little_endian:
        return None  # encoded otherwise than its transfer syntax says: pydicom writes it right
    long_header = not raw.is_implicit_VR and (raw.VR or "OW") in LONG_LENGTH_VRS
    start = raw.value_tell - (12 if long_header else 8)
    if data[start : start + 4] != PIXEL_TAG_BYTES:
        return None
    # Whole, or pydicom's reading (which a truncated element needs) is what gets written.
    if raw.length == UNDEFINED_LENGTH:
        return start if data.endswith(SEQUENCE_END) else None
    return start if raw.value_tell + raw.length == len(data) else None


def read_source(source: Path | bytes) -> Source:
    """The instance of ``source``; :class:`Refused` when it is not an instance to de-identify."""
    try:
        data = source if isinstance(source, bytes) else source.read_bytes()
        dataset = pydicom.dcmread(io.BytesIO(data))
    except (InvalidDicomError, OSError, ValueError, EOFError) as error:
        raise Refused(f"not readable as DICOM: {error}") from error
    if getattr(dataset, "file_meta", {}).get("MediaStorageSOPClassUID") == MEDIA_DIRECTORY:
        # Its records repeat the instances' identifying values and point at their old files.
        raise Refused("a DICOMDIR is not de-identified: build a new one")
    return Source(dataset, data, _pixels_at(dataset, data))


@dataclass
class Deidentified:
    """One instance de-identified: its Part-10 bytes (``header`` then ``pixels``, the source's
    encoded Pixel Data when it was copied), what was done, what the check found."""

    header: bytes
    sop_instance_uid: str
    result: InstanceResult
    leaks: list[Leak] = field(default_factory=list)
    pixels: bytes | memoryview = b""

    @property
    def data(self) -> bytes:
        return self.header + self.pixels

    def write(self, path: Path) -> None:
        """Write it to ``path``, 0600 (it was a patient's)."""
        with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as out:
            out.write(self.header)
            out.write(self.pixels)


def deidentify_instance(
    source: Source, deidentifier: Deidentifier, *, quarantine: bool = True, label: str = ""
) -> Deidentified:
    """``source`` de-identified and encoded, with the check's leaks (``label`` names the output
    in them, the caller may rename it); :class:`Quarantined` for suspected burned-in text,
    :class:`Refused` when the result cannot be encoded."""
    dataset = source.dataset
    rule = matching_rule(dataset, deidentifier.pixel_rules) if PIXEL_DATA in dataset else None
    reason = burned_in_reason(dataset) if quarantine else None
    if reason is not None and rule is None:
        raise Quarantined(reason)
    pixels: bytes | memoryview = b""
    if rule is not None:
        try:
            clean_pixels(dataset, rule)
        except CannotClean as cannot:
            raise Quarantined(f"{reason or 'pixel rule'}; {cannot}") from cannot
    elif source.pixels_at is not None:
        pixels = memoryview(source.data)[source.pixels_at :]
        del dataset[PIXEL_DATA]  # never walked, parsed or encoded: appended as it was
    result = deidentifier.deidentify(dataset, pixels_cleaned=rule is not None)
    if rule is not None:  # the top-level Pixel Data was walked as kept: it was cleaned
        result.counts.subtract({("PixelData", "kept"): 1, ("PixelData", "cleaned"): -1})
        result.counts = +result.counts
    buffer = io.BytesIO()
    try:
        dataset.save_as(buffer, enforce_file_format=False)
    except (ValueError, TypeError, OverflowError) as error:
        raise Refused(f"cannot be written de-identified: {error}") from error
    header = buffer.getvalue()
    encoded_pixels = b"" if pixels else (dataset.get("PixelData") or b"")
    leaks = find_leaks(Path(label), header, result.identifying, encoded_pixels)
    return Deidentified(header, str(dataset.get("SOPInstanceUID", "")), result, leaks, pixels)
