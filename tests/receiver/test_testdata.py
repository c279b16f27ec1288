"""Every file of pydicom's test data that carries the four UIDs, sent to the receiver.

Accepted files are stored with the dataset byte-identical to what was sent and indexed;
refused ones get a failure status (or their context is rejected) and change nothing.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_files
from pydicom.errors import InvalidDicomError
from pydicom.uid import ImplicitVRLittleEndian
from pynetdicom import AE
from pynetdicom.dsutils import encode
from receiver_peers import dataset_bytes

from openjip.index.sqlite import SQLiteIndex
from openjip.storage.local import LocalObjectStore

UIDS = ("SOPClassUID", "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")


def _candidates() -> list[Path]:
    found = []
    for name in sorted(get_testdata_files()):
        path = Path(name)
        if not path.is_file():
            continue
        try:
            ds = dcmread(path, stop_before_pixels=True, force=True)
        except (InvalidDicomError, OSError, ValueError, EOFError, TypeError, KeyError):
            continue
        if all(str(ds.get(uid, "") or "").strip() for uid in UIDS):
            found.append(path)
    return found


def _snapshot(store: LocalObjectStore) -> dict[str, tuple[int, float]]:
    return {o.key: (o.size, o.modified.timestamp()) for o in store.list("")}


def test_every_bundled_file_is_stored_or_refused_cleanly(
    running_receiver: Any, raw_send: None
) -> None:
    logging.getLogger("pynetdicom").setLevel(logging.CRITICAL)
    files = _candidates()
    assert len(files) > 100
    store = LocalObjectStore(running_receiver.settings.storage_path)
    index = SQLiteIndex(running_receiver.settings.index_path)
    outcome: dict[str, list[str]] = {"stored": [], "refused": [], "context rejected": []}
    try:
        for path in files:
            data = path.read_bytes()
            ds = dcmread(path, force=True, stop_before_pixels=True)
            has_meta = data[128:132] == b"DICM" and "TransferSyntaxUID" in ds.file_meta
            syntax = ds.file_meta.TransferSyntaxUID if has_meta else ImplicitVRLittleEndian
            ae = AE(ae_title="TESTDATA")
            ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
            ae.add_requested_context(str(ds.SOPClassUID).strip("\0 "), [syntax])
            before = _snapshot(store)
            assoc = ae.associate(running_receiver.host, running_receiver.port, ae_title="OPENJIP")
            try:
                # pynetdicom gives up an association whose only context was rejected.
                if not assoc.is_established or not assoc.accepted_contexts:
                    outcome["context rejected"].append(path.name)
                    assert _snapshot(store) == before
                    continue
                if not has_meta:
                    ds = dcmread(path, force=True)
                try:
                    status = assoc.send_c_store(path if has_meta else ds)
                except (ValueError, AttributeError) as exc:  # pynetdicom cannot send it
                    outcome["context rejected"].append(f"{path.name}: {exc}")
                    continue
            finally:
                if assoc.is_established:
                    assoc.release()
                ae.shutdown()
            assert "Status" in status, path.name
            uid = str(ds.SOPInstanceUID).strip("\0 ")
            if status.Status == 0x0000:
                outcome["stored"].append(path.name)
                record = index.get_instance(uid)
                assert record is not None, path.name
                sent = (
                    dataset_bytes(data)
                    if has_meta
                    else encode(ds, syntax.is_implicit_VR, syntax.is_little_endian)
                )
                assert dataset_bytes(store.get(record.object_key)) == sent, path.name
            else:
                outcome["refused"].append(f"{path.name}: 0x{status.Status:04X}")
                assert status.Status & 0xF000 in (0xA000, 0xC000) or status.Status == 0x0122
                assert _snapshot(store) == before, path.name
    finally:
        index.close()
    print({key: len(value) for key, value in outcome.items()}, outcome["refused"])
    assert len(outcome["stored"]) > 100
    # The deliberately broken files of the test data are among the refused ones.
    assert any("truncated" in name or "too_short" in name for name in outcome["refused"])


@pytest.fixture(autouse=True)
def _quiet_pydicom() -> None:
    logging.getLogger("pydicom").setLevel(logging.CRITICAL)


def test_stored_files_read_back_with_pydicom(running_receiver: Any, raw_send: None) -> None:
    """Spot check: a stored compressed instance opens with pydicom, file meta included."""
    path = Path(get_testdata_files("JPEG2000.dcm")[0])
    ds = dcmread(path)
    ae = AE(ae_title="TESTDATA")
    ae.add_requested_context(ds.SOPClassUID, [ds.file_meta.TransferSyntaxUID])
    assoc = ae.associate(running_receiver.host, running_receiver.port, ae_title="OPENJIP")
    try:
        assert assoc.send_c_store(path).Status == 0x0000
    finally:
        assoc.release()
        ae.shutdown()
    index = SQLiteIndex(running_receiver.settings.index_path)
    try:
        record = index.get_instance(ds.SOPInstanceUID)
    finally:
        index.close()
    assert record is not None
    stored = LocalObjectStore(running_receiver.settings.storage_path).get(record.object_key)
    back = dcmread(io.BytesIO(stored))
    assert back.file_meta.TransferSyntaxUID == ds.file_meta.TransferSyntaxUID
    assert back.PixelData == ds.PixelData
