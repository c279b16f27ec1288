"""One header: the fast reader and pydicom give the same DICOM JSON, whole header compared,
for every Part-10 file of pydicom's test data and pydicom-data.

Before issue 15 they differed on 15 of the files the fast path reads: group lengths dropped,
``null`` where pydicom wrote ``""``, ``"DERIVED "`` with its padding, an unreadable IS kept.
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread

from openjip.dicom import UnreadableInstance, dicom_json_header, read_instance
from openjip.dicom.fastheader import FastPathUnsupported, MalformedInstance, parse_part10

# The tests import dicom_corpus (pytest's importlib mode puts no test folder on sys.path).
sys.path.insert(0, str(Path(__file__).parent))

from dicom_corpus import corpus_files


def _pydicom_header(data: bytes) -> dict[str, Any]:
    return dicom_json_header(dcmread(io.BytesIO(data), stop_before_pixels=True))


def _canonical(header: dict[str, Any]) -> str:
    return json.dumps(header, sort_keys=True, allow_nan=False)


def test_fast_path_and_pydicom_agree_on_every_file() -> None:
    compared, refused, mismatched = [], [], []
    for path in corpus_files():
        data = path.read_bytes()
        try:
            fast = parse_part10(data).header
        except FastPathUnsupported:
            continue  # read_instance gives pydicom's header for these (next test)
        except MalformedInstance:
            refused.append(path.name)
            continue
        compared.append(path.name)
        if _canonical(fast) != _canonical(_pydicom_header(data)):
            mismatched.append(path.name)
    assert mismatched == []
    # The corpus had 111 files the fast path reads and 16 it refuses (no DICM, truncated).
    assert len(compared) >= 100, compared
    assert "MR_truncated.dcm" in refused


@pytest.mark.parametrize("path", corpus_files(), ids=lambda path: path.name)
def test_read_instance_is_pydicoms_header_or_a_reasoned_refusal(path: Path) -> None:
    data = path.read_bytes()
    try:
        parsed = read_instance(path)
    except UnreadableInstance as refusal:
        assert str(refusal)
        return
    assert _canonical(parsed.header) == _canonical(_pydicom_header(data))
    assert read_instance(data) == parsed
