"""Fixtures of the query/retrieve tests: a site holding a known set of studies."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file

# The tests import qr_peers (pytest's importlib mode puts no test folder on sys.path).
sys.path.insert(0, str(Path(__file__).parent))

from qr_peers import NetNamespace

TESTDATA = ("CT_small.dcm", "MR_small.dcm", "SC_rgb_rle.dcm")
"""pydicom test files stored next to the phantom: three more patients, RLE among them."""


@dataclass
class Site:
    """What the test site stores: files by SOPInstanceUID, and the studies' UIDs."""

    files: dict[str, Path]
    phantom_study: str
    phantom_series: str
    studies: dict[str, str]
    """PatientID -> StudyInstanceUID."""


OPEN_TO_UNKNOWN_AES = '["echo", "store", "find", "get", "move"]'
"""These tests query and retrieve as AEs the site does not know: a loopback receiver may let
them (tests/access/test_dimse*.py test the permissions themselves)."""


@pytest.fixture(autouse=True)
def unknown_aes_may_query(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every receiver of these tests lets unknown AEs find, get and move."""
    monkeypatch.setenv("OPENJIP_RECEIVER__UNKNOWN_AE_ALLOW", OPEN_TO_UNKNOWN_AES)


@pytest.fixture
def site_data(ingest: Callable[[list[Path]], list[str]], ct_phantom: list[Path]) -> Site:
    """The CT phantom (PatientID PHANTOM, 24 slices) and three pydicom test files, ingested."""
    paths = [*ct_phantom, *(Path(str(get_testdata_file(name))) for name in TESTDATA)]
    ingest(paths)
    files: dict[str, Path] = {}
    studies: dict[str, str] = {}
    for path in paths:
        ds = dcmread(path, stop_before_pixels=True)
        files[ds.SOPInstanceUID] = path
        studies[ds.PatientID] = ds.StudyInstanceUID
    phantom = dcmread(ct_phantom[0], stop_before_pixels=True)
    return Site(files, phantom.StudyInstanceUID, phantom.SeriesInstanceUID, studies)


@pytest.fixture
def netns() -> Iterator[NetNamespace]:
    """A private network namespace; everything started in it is stopped afterwards."""
    namespace = NetNamespace()
    yield namespace
    namespace.close()


def receiver_env(home: Path, **extra: Any) -> dict[str, str]:
    """Environment of a receiver subprocess of the test's site."""
    env = {
        "OPENJIP_HOME": str(home),
        "OPENJIP_RECEIVER__WORKERS": "1",
        "OPENJIP_RECEIVER__UNKNOWN_AE_ALLOW": OPEN_TO_UNKNOWN_AES,
    }
    env.update({key: str(value) for key, value in extra.items()})
    return env
