"""A de-identification run over files: write each instance de-identified, quarantine burned-in
text, and prove the output: no identifying value of a source header may occur anywhere in the
bytes of its output file (private tags, nested sequences and all), else the run fails.
"""

from __future__ import annotations

import io
import json
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from openjip.deid.profile import load_table
from openjip.deid.walker import Deidentifier, InstanceResult

# Secondary capture classes (single and multi-frame): screenshots, scanned paper, text burned in.
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
BURNED_IN_MODALITIES = frozenset({"US"})
MEDIA_DIRECTORY = "1.2.840.10008.1.3.10"


def burned_in_reason(dataset: Dataset) -> str | None:
    """Why an instance probably has text in its pixels (None when it is not suspected)."""
    flag = str(dataset.get("BurnedInAnnotation", "")).upper()
    if flag == "YES":
        return "BurnedInAnnotation is YES"
    if flag == "NO" or "PixelData" not in dataset:
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


@dataclass
class Report:
    options: list[str]
    instances: int = 0
    attributes: Counter[tuple[str, str]] = field(default_factory=Counter)
    quarantined: list[tuple[str, str]] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)
    leaks: list[Leak] = field(default_factory=list)
    outputs: list[tuple[str, str]] = field(default_factory=list)
    """(source file, de-identified file) of every instance written."""

    @property
    def check_passed(self) -> bool:
        return not self.leaks

    def failed(self, allow_quarantine: bool = False) -> bool:
        """Whether the run failed: a file failed, the check failed, or (unless allowed) an
        instance was quarantined."""
        return bool(self.failures or self.leaks or (self.quarantined and not allow_quarantine))

    def to_json(self) -> dict[str, Any]:
        table = load_table()
        attributes: dict[str, dict[str, int]] = {}
        for (name, outcome), count in sorted(self.attributes.items()):
            attributes.setdefault(name, {})[outcome] = count
        return {
            "profile": {
                "table": table["table"],
                "standard": table["standard"],
                "source": table["source"],
                "options": self.options,
            },
            "instances": self.instances,
            "attributes": attributes,
            "quarantined": [{"file": f, "reason": r} for f, r in self.quarantined],
            "failures": [{"file": f, "reason": r} for f, r in self.failures],
            "check": {
                "passed": self.check_passed,
                "leaks": [leak.__dict__ for leak in self.leaks],
            },
        }

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), indent=1) + "\n")


def find_leaks(output: Path, data: bytes, identifying: set[str], pixels: bytes = b"") -> list[Leak]:
    """Every identifying value found in ``data`` (the bytes written to ``output``), all but its
    Pixel Data: the pixels are the source's byte for byte (burned-in text is the quarantine's
    concern), and a three-letter name occurs by chance in a few hundred kilobytes of pixels."""
    if pixels:
        start = data.rfind(pixels)
        data = data[:start] + data[start + len(pixels) :] if start >= 0 else data
    leaks = []
    for value in sorted(identifying):
        for encoded in {value.encode("utf-8"), value.encode("latin-1", "replace")}:
            offset = data.find(encoded)
            if offset >= 0:
                leaks.append(Leak(str(output), offset, f"{value[0]}… ({len(value)} characters)"))
                break
    return leaks


class Refused(ValueError):
    """An instance that is not de-identified, with the reason (unreadable, a DICOMDIR, not
    writable de-identified, an identifying value left in the output)."""


class Quarantined(Refused):
    """An instance with suspected burned-in text: never written."""


@dataclass
class Deidentified:
    """One instance de-identified: its Part-10 bytes, what was done, what the check found."""

    data: bytes
    sop_instance_uid: str
    result: InstanceResult
    leaks: list[Leak]


def read_source(source: Path | bytes) -> Dataset:
    """The dataset of ``source``; :class:`Refused` when it is not an instance to de-identify."""
    try:
        dataset = pydicom.dcmread(io.BytesIO(source) if isinstance(source, bytes) else source)
    except (InvalidDicomError, OSError, ValueError, EOFError) as error:
        raise Refused(f"not readable as DICOM: {error}") from error
    if getattr(dataset, "file_meta", {}).get("MediaStorageSOPClassUID") == MEDIA_DIRECTORY:
        # Its records repeat the instances' identifying values and point at their old files.
        raise Refused("a DICOMDIR is not de-identified: build a new one")
    return dataset


def deidentify_dataset(
    dataset: Dataset, deidentifier: Deidentifier, *, quarantine: bool = True, label: str = ""
) -> Deidentified:
    """``dataset`` de-identified in place and encoded, with the check's leaks (``label`` names
    the output in them, the caller may rename it); :class:`Quarantined` for suspected
    burned-in text, :class:`Refused` when the result cannot be encoded."""
    reason = burned_in_reason(dataset) if quarantine else None
    if reason is not None:
        raise Quarantined(reason)
    result = deidentifier.deidentify(dataset)
    buffer = io.BytesIO()  # one write, and the check reads what was written without a read
    try:
        dataset.save_as(buffer, enforce_file_format=False)
    except (ValueError, TypeError, OverflowError) as error:
        raise Refused(f"cannot be written de-identified: {error}") from error
    data = buffer.getvalue()
    pixels = dataset.get("PixelData") or b""
    leaks = find_leaks(Path(label), data, result.identifying, pixels)
    return Deidentified(data, str(dataset.get("SOPInstanceUID", "")), result, leaks)


def deidentify_files(
    paths: Iterable[Path],
    out: Path,
    deidentifier: Deidentifier,
    *,
    quarantine: bool = True,
    advance: Callable[[], None] = lambda: None,
) -> Report:
    """De-identify every file of ``paths`` into ``out`` (named by the new SOP Instance UID)."""
    out.mkdir(parents=True, exist_ok=True)
    report = Report(options=sorted(deidentifier.profile.options))
    written: dict[Path, Path] = {}
    for path in paths:
        try:
            _deidentify_file(path, out, deidentifier, quarantine, report, written)
        except Quarantined as reason:
            report.quarantined.append((str(path), str(reason)))
        except Refused as reason:
            report.failures.append((str(path), str(reason)))
        advance()
    return report


def _deidentify_file(
    path: Path,
    out: Path,
    deidentifier: Deidentifier,
    quarantine: bool,
    report: Report,
    written: dict[Path, Path],
) -> None:
    dataset = read_source(path)
    done = deidentify_dataset(dataset, deidentifier, quarantine=quarantine)
    name = done.sop_instance_uid or deidentifier.pseudonyms.uid(str(path))
    target = out / f"{name}.dcm"
    if target in written:
        raise Refused(f"same SOP Instance UID as {written[target]}")
    for leak in done.leaks:
        leak.output = str(target)
    written[target] = path
    target.write_bytes(done.data)
    report.instances += 1
    report.outputs.append((str(path), str(target)))
    report.attributes.update(done.result.counts)
    report.leaks.extend(done.leaks)
