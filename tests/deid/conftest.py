"""Shared inputs of the de-identification tests: every file of pydicom's test data and of
pydicom-data that pydicom reads as DICOM, and a de-identifier with a fixed test secret."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_files
from pydicom.errors import InvalidDicomError

from openjip.deid.profile import build_profile
from openjip.deid.pseudonyms import Pseudonyms
from openjip.deid.walker import Deidentifier

SECRET = b"test-site-secret"


MEDIA_DIRECTORY = "1.2.840.10008.1.3.10"


def _instance(path: Path) -> bool:
    try:
        dataset = pydicom.dcmread(path, stop_before_pixels=True)
    except (InvalidDicomError, OSError, ValueError, EOFError, AttributeError, KeyError):
        return False
    return dataset.file_meta.get("MediaStorageSOPClassUID") != MEDIA_DIRECTORY


def all_test_files() -> list[Path]:
    """pydicom's own test files and pydicom-data's (``get_testdata_files`` lists both) that
    hold an instance (a DICOMDIR is refused by a run, test_cli proves it)."""
    return sorted(path for path in map(Path, get_testdata_files()) if _instance(path))


def deidentifier(*options: str, secret: bytes = SECRET) -> Deidentifier:
    return Deidentifier(build_profile(options), Pseudonyms(secret))


@pytest.fixture(scope="session")
def test_files() -> list[Path]:
    files = all_test_files()
    assert len(files) > 150, "pydicom's and pydicom-data's test files are not all there"
    return files
