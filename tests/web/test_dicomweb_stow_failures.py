"""STOW-RS answers per instance whatever happens to one of them (issue 16 item 3): a part the
parsers choke on, a value the index cannot hold, an error nobody foresaw. On the code before,
each of the first three made the whole request a 500 although the instances before it were
already stored and indexed (so never acknowledged) and the ones after it were skipped."""

from __future__ import annotations

import io
import struct
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pydicom
import pydicom.data
import pytest
from pydicom.dataelem import RawDataElement
from pydicom.tag import Tag
from pydicom.uid import DeflatedExplicitVRLittleEndian

from openjip.config import Settings
from openjip.index import Query, open_index
from openjip.storage import ObjectInfo, open_store
from openjip.storage.local import LocalObjectStore
from openjip.web import WebService
from openjip.web.app import create_app
from openjip.web.dicomweb.multipart import write_multipart

CT = Path(str(pydicom.data.get_testdata_file("CT_small.dcm")))
MR = Path(str(pydicom.data.get_testdata_file("MR_small.dcm")))


def _stow(http: httpx.Client, parts: list[bytes]) -> httpx.Response:
    boundary = uuid.uuid4().hex
    body = b"".join(write_multipart([("application/dicom", [data]) for data in parts], boundary))
    return http.post(
        "/dicom-web/studies",
        content=body,
        headers={
            "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
            "Accept": "application/dicom+json",
        },
    )


def _saved(ds: pydicom.Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer)
    return buffer.getvalue()


def _ct_copy(sop_uid: str, **raw: bytes) -> pydicom.Dataset:
    ds = pydicom.dcmread(CT)
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    for keyword, value in raw.items():
        tag = Tag(pydicom.datadict.tag_for_keyword(keyword))
        vr = pydicom.datadict.dictionary_VR(tag)
        ds[tag] = RawDataElement(tag, vr, len(value), value, 0, False, True)
    return ds


def _nested_1000_deep() -> bytes:
    """Sequences nested 1,000 deep: RecursionError inside the reader before."""
    data = _saved(_ct_copy("1.2.826.0.1.3680043.9.7777.1"))
    sequence = b"\x08\x00\x15\x11SQ\0\0\xff\xff\xff\xff\xfe\xff\x00\xe0\xff\xff\xff\xff"
    ends = b"\xfe\xff\x0d\xe0\0\0\0\0\xfe\xff\xdd\xe0\0\0\0\0"
    at = data.index(b"\x20\x00\x0d\x00UI")  # before StudyInstanceUID
    return data[:at] + sequence * 1000 + ends * 1000 + data[at:]


def _broken_deflate() -> bytes:
    """A deflated dataset whose stream is garbage: zlib.error inside pydicom before."""
    ds = _ct_copy("1.2.826.0.1.3680043.9.7777.2")
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    data = _saved(ds)
    meta_end = 144 + struct.unpack_from("<L", data, 140)[0]
    return data[:meta_end] + b"\xff" * 64


def _failures(body: dict[str, Any]) -> list[tuple[int, str]]:
    """(FailureReason, ErrorComment) of each failed part, in order."""
    return [
        (item["00081197"]["Value"][0], item["00000902"]["Value"][0])
        for item in body.get("00081198", {}).get("Value", [])
    ]


def test_every_part_is_answered_and_the_good_ones_are_stored(
    http: httpx.Client, settings: Settings
) -> None:
    huge_number = _ct_copy("1.2.826.0.1.3680043.9.7777.3", InstanceNumber=b"99999999999999999999")
    response = _stow(
        http,
        [
            CT.read_bytes(),
            _nested_1000_deep(),
            _broken_deflate(),
            _saved(huge_number),
            MR.read_bytes(),
        ],
    )

    assert response.status_code == 202, response.text
    body = response.json()
    stored = [item["00081155"]["Value"][0] for item in body["00081199"]["Value"]]
    expected = [
        pydicom.dcmread(CT).SOPInstanceUID,
        huge_number.SOPInstanceUID,
        pydicom.dcmread(MR).SOPInstanceUID,
    ]
    assert stored == expected
    failures = _failures(body)
    assert [reason for reason, _ in failures] == [0xC000, 0xC000]
    assert "nested deeper than 64" in failures[0][1]
    assert "cannot parse dataset" in failures[1][1]
    index = open_index(settings)
    assert sorted(r.SOPInstanceUID for r in index.find_instances(Query())) == sorted(expected)
    # An IS beyond 32 bits is no number the index can hold: null, the instance kept.
    assert index.get_instance(huge_number.SOPInstanceUID).InstanceNumber is None
    index.close()


class _StoreFailingOn(LocalObjectStore):
    """The site's real store, with a fault nobody foresaw for one key."""

    def __init__(self, root: Path, poisoned: str) -> None:
        super().__init__(root)
        self.poisoned = poisoned

    def put(self, key: str, data: Any) -> ObjectInfo:
        if self.poisoned in key:
            raise RuntimeError("unforeseen failure")
        return super().put(key, data)


@pytest.fixture
def faulty_http(settings: Settings, admin_auth: tuple[str, str]) -> Iterator[httpx.Client]:
    store = open_store(settings)
    assert isinstance(store, LocalObjectStore)
    settings.web.port = 0
    app = create_app(
        settings, store=_StoreFailingOn(store.root, pydicom.dcmread(CT).SOPInstanceUID)
    )
    service = WebService(settings, app=app)
    service.start()
    with httpx.Client(base_url=service.url, timeout=10, auth=admin_auth) as client:
        yield client
    service.stop()


def test_an_unforeseen_error_fails_its_part_only(
    faulty_http: httpx.Client, settings: Settings
) -> None:
    response = _stow(faulty_http, [MR.read_bytes(), CT.read_bytes()])

    assert response.status_code == 202, response.text
    body = response.json()
    assert [i["00081155"]["Value"][0] for i in body["00081199"]["Value"]] == [
        pydicom.dcmread(MR).SOPInstanceUID
    ]
    [(reason, comment)] = _failures(body)
    assert reason == 0x0110  # processing failure
    assert comment == "RuntimeError: unforeseen failure"
    index = open_index(settings)
    assert [r.SOPInstanceUID for r in index.find_instances(Query())] == [
        pydicom.dcmread(MR).SOPInstanceUID
    ]
    index.close()
