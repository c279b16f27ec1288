"""openjip's Basic Profile against Orthanc's ``/instances/{id}/anonymize`` (its Basic Profile)
on the same files, attribute by attribute: every attribute of the source or of either output
is classed by what each did to it (kept, removed, emptied, replaced; a sequence ``changed``
inside), and the differences must be exactly those listed, with their reasons, in
docs/deidentification.md ("Compared with Orthanc"). Orthanc runs in a private network
namespace (it listens on every interface)."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset

from openjip.deid.instance import deidentify_instance, read_source

from .conftest import deidentifier

DOC = Path(__file__).resolve().parents[2] / "docs" / "deidentification.md"
HELPER = Path(__file__).with_name("orthanc_anonymize.py")
FILES = [
    "CT_small.dcm", "MR_small.dcm", "693_UNCI.dcm", "JPEG2000.dcm", "eCT_Supplemental.dcm",
    "emri_small.dcm", "MR-SIEMENS-DICOM-WithOverlays.dcm", "US1_UNCR.dcm", "SC_rgb.dcm",
    "test-SR.dcm", "liver.dcm", "rtplan.dcm", "rtdose.dcm", "waveform_ecg.dcm",
]  # fmt: skip
"""Real files of pydicom and pydicom-data: CT, MR, enhanced CT, overlays, US, SC, SR, SEG, RT,
ECG. Burned-in text is left aside (openjip quarantines US and SC, Orthanc does not look)."""
Difference = tuple[str, str, str]
"""(attribute, what openjip did, what Orthanc did)."""


def _empty(element: DataElement | None) -> bool:
    return (
        element is None
        or element.value in (None, "", b"")
        or (element.VR == "SQ" and len(element.value) == 0)
    )


def treatment(source: DataElement | None, output: DataElement | None) -> str:
    if output is None:
        return "removed"
    if source is None:
        return "added"
    if _empty(output):
        return "emptied"
    if output.value == source.value:
        return "kept"
    return "changed" if output.VR == "SQ" else "replaced"


def _name(tag: pydicom.tag.BaseTag) -> str:
    if tag.element == 0:
        return "group lengths (gggg,0000)"
    if tag.is_private:
        return "private attributes"
    if tag.group & 0xFF00 == 0x6000:
        return "overlay group (60xx,eeee)"
    return pydicom.datadict.keyword_for_tag(tag) or str(tag)


def differences(source: Dataset, ours: Dataset, theirs: Dataset) -> set[Difference]:
    found = set()
    for tag in sorted({e.tag for data in (source, ours, theirs) for e in data}):
        before, mine, orthanc = source.get(tag), ours.get(tag), theirs.get(tag)
        if _empty(before) and _empty(mine) and _empty(orthanc):
            continue  # nothing to hide, and nothing put in by either
        if treatment(before, mine) != treatment(before, orthanc):
            found.add((_name(tag), treatment(before, mine), treatment(before, orthanc)))
    return found


def documented() -> set[Difference]:
    """The rows of the doc's table: | attribute | openjip | Orthanc | why |."""
    text = DOC.read_text().split("## Compared with Orthanc", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `?([^|`]+?)`? \| (\w+) \| (\w+) \| [^|]+\|$", text, re.MULTILINE)
    return {(name.strip(), ours, theirs) for name, ours, theirs in rows if name != "attribute"}


@pytest.fixture(scope="module")
def orthanc_outputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Dataset]:
    out = tmp_path_factory.mktemp("orthanc")
    paths = [str(get_testdata_file(name)) for name in FILES]
    command = [sys.executable, str(HELPER), str(out), *paths]
    run = subprocess.run(
        ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", *command],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TCP_NODELAY": "1"},
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stderr == "", run.stderr  # Orthanc took every file
    return {name: pydicom.dcmread(out / f"{i}.dcm") for i, name in enumerate(FILES)}


def test_only_the_documented_differences_from_orthanc_remain(
    orthanc_outputs: dict[str, Dataset],
) -> None:
    basic = deidentifier()
    observed: dict[Difference, list[str]] = {}
    for name in FILES:
        path = Path(str(get_testdata_file(name)))
        ours = deidentify_instance(read_source(path), basic, quarantine=False)
        assert not ours.leaks, name
        mine = pydicom.dcmread(io.BytesIO(ours.data))
        for difference in differences(pydicom.dcmread(path), mine, orthanc_outputs[name]):
            observed.setdefault(difference, []).append(name)
    listed = documented()
    assert len(listed) > 10, "the doc's comparison table was not found"
    unexplained = {d: files for d, files in observed.items() if d not in listed}
    assert not unexplained, f"differences from Orthanc not in the doc: {unexplained}"
    assert not listed - set(observed), f"listed but no longer seen: {listed - set(observed)}"
