"""C-ECHO and C-STORE against the receiver with dcmtk and pynetdicom as peers, and the
statuses bad requests get."""

from __future__ import annotations

import io
import socket
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    CTImageStorage,
    MRImageStorage,
    Verification,
)
from receiver_peers import dataset_bytes, dcmtk, indexed_instances, scu, stored_objects

from openjip.storage.local import LocalObjectStore

CT = Path(get_testdata_file("CT_small.dcm"))


def test_echo_with_dcmtk_and_pynetdicom(running_receiver: Any) -> None:
    result = dcmtk("echoscu", "-aec", "OPENJIP", running_receiver.host, str(running_receiver.port))
    assert result.returncode == 0, result.stderr
    with scu(running_receiver.address, [(Verification, [ImplicitVRLittleEndian])]) as assoc:
        assert assoc.send_c_echo().Status == 0x0000


def test_storescu_series_is_stored_byte_identical_and_indexed(
    running_receiver: Any, ct_phantom: list[Path]
) -> None:
    result = dcmtk(
        "storescu", "-aet", "SCANNER", "-aec", "OPENJIP",
        running_receiver.host, str(running_receiver.port), *map(str, ct_phantom),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    store = LocalObjectStore(running_receiver.settings.storage_path)
    records = {r.SOPInstanceUID: r for r in indexed_instances(running_receiver.settings)}
    assert len(records) == len(ct_phantom)
    for path in ct_phantom:
        sent = path.read_bytes()
        ds = dcmread(path, stop_before_pixels=True)
        record = records[ds.SOPInstanceUID]
        assert record.source_ae == "SCANNER"
        stored = store.get(record.object_key)
        assert dataset_bytes(stored) == dataset_bytes(sent)
        meta = dcmread(io.BytesIO(stored), stop_before_pixels=True).file_meta
        assert meta.TransferSyntaxUID == ds.file_meta.TransferSyntaxUID
        assert meta.SourceApplicationEntityTitle == "SCANNER"


def test_resend_is_idempotent(running_receiver: Any, raw_send: None) -> None:
    ds = dcmread(CT)
    with scu(running_receiver.address, [(CTImageStorage, [ds.file_meta.TransferSyntaxUID])]) as a:
        assert a.send_c_store(CT).Status == 0x0000
        assert a.send_c_store(CT).Status == 0x0000
    records = indexed_instances(running_receiver.settings)
    assert [r.SOPInstanceUID for r in records] == [ds.SOPInstanceUID]
    assert len(stored_objects(running_receiver.settings)) == 1


def test_missing_uid_gets_cannot_understand(running_receiver: Any) -> None:
    ds = dcmread(CT)
    del ds.StudyInstanceUID
    with scu(running_receiver.address, [(CTImageStorage, [ExplicitVRLittleEndian])]) as assoc:
        status = assoc.send_c_store(ds)
        assert status.Status == 0xC000
        assert "StudyInstanceUID missing" in status.ErrorComment
        assert assoc.send_c_store(dcmread(CT)).Status == 0x0000  # association still usable
    assert len(indexed_instances(running_receiver.settings)) == 1
    assert len(stored_objects(running_receiver.settings)) == 1


def test_wrong_sop_class_for_the_context_is_refused(running_receiver: Any) -> None:
    """A C-STORE whose Affected SOP Class is not the abstract syntax of its context."""
    ds = dcmread(CT)
    buffer = DicomBytesIO()
    buffer.is_little_endian, buffer.is_implicit_VR = True, False
    write_dataset(buffer, ds)
    contexts = [
        (MRImageStorage, [ExplicitVRLittleEndian]),
        (CTImageStorage, [ExplicitVRLittleEndian]),
    ]
    with scu(running_receiver.address, contexts) as assoc:
        mr = next(cx for cx in assoc.accepted_contexts if cx.abstract_syntax == MRImageStorage)
        request = C_STORE()
        request.MessageID = 7
        request.AffectedSOPClassUID = CTImageStorage
        request.AffectedSOPInstanceUID = ds.SOPInstanceUID
        request.Priority = 0x0002
        request.DataSet = io.BytesIO(buffer.getvalue())
        # As pynetdicom's send_* methods do: pause the association's reactor so it does not
        # take the response off the queue first.
        assoc._reactor_checkpoint.clear()
        while not assoc._is_paused:
            time.sleep(0.001)
        try:
            assoc.dimse.send_msg(request, mr.context_id)
            _, response = assoc.dimse.get_msg(block=True)
        finally:
            assoc._reactor_checkpoint.set()
        assert response is not None
        assert response.Status == 0x0122
        assert "not of this context" in response.ErrorComment
        assert assoc.send_c_store(ds).Status == 0x0000  # the right context works
    assert len(indexed_instances(running_receiver.settings)) == 1


def test_truncated_dataset_gets_cannot_understand(
    running_receiver: Any, raw_send: None, tmp_path: Path
) -> None:
    truncated = tmp_path / "truncated.dcm"
    truncated.write_bytes(CT.read_bytes()[:-1000])
    syntax = dcmread(CT, stop_before_pixels=True).file_meta.TransferSyntaxUID
    with scu(running_receiver.address, [(CTImageStorage, [syntax])]) as assoc:
        status = assoc.send_c_store(truncated)
        assert status.Status == 0xC000
        assert "truncated" in status.ErrorComment
        assert stored_objects(running_receiver.settings) == []
        assert assoc.send_c_store(CT).Status == 0x0000  # still serving on the same association
    assert len(indexed_instances(running_receiver.settings)) == 1


def test_garbage_bytes_do_not_stop_the_receiver(running_receiver: Any) -> None:
    with scu(running_receiver.address, [(Verification, [ImplicitVRLittleEndian])]) as assoc:
        raw = assoc.dul.socket.socket
        assert raw is not None
        raw.sendall(struct.pack(">BBL", 0x04, 0, 20) + b"\xff" * 20)  # a P-DATA of nonsense
    with socket.create_connection(running_receiver.address, timeout=10) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\n\r\n" + b"\0" * 100)
        sock.settimeout(10)
        sock.recv(100)
    result = dcmtk("echoscu", "-aec", "OPENJIP", running_receiver.host, str(running_receiver.port))
    assert result.returncode == 0, result.stderr
    with scu(running_receiver.address, [(CTImageStorage, [ExplicitVRLittleEndian])]) as assoc:
        assert assoc.send_c_store(dcmread(CT)).Status == 0x0000


def test_wrong_called_ae_is_rejected_when_required(receiver_factory: Callable[..., Any]) -> None:
    receiver = receiver_factory(require_called_ae=True)
    address = [receiver.host, str(receiver.port)]
    denied = dcmtk("echoscu", "-aet", "SCU", "-aec", "NOTOPENJIP", *address)
    assert denied.returncode != 0
    assert "rejected" in denied.stderr.lower(), denied.stderr
    assert dcmtk("echoscu", "-aet", "SCU", "-aec", receiver.ae_title, *address).returncode == 0


def test_unknown_calling_ae_is_rejected(receiver_factory: Callable[..., Any]) -> None:
    receiver = receiver_factory(allowed_calling_aes=["GOODSCU"])
    address = [receiver.host, str(receiver.port)]
    denied = dcmtk("echoscu", "-aet", "BADSCU", "-aec", "OPENJIP", *address)
    assert denied.returncode != 0
    assert "rejected" in denied.stderr.lower(), denied.stderr
    assert dcmtk("storescu", "-aet", "BADSCU", "-aec", "OPENJIP", *address, str(CT)).returncode
    allowed = dcmtk("echoscu", "-aet", "GOODSCU", "-aec", "OPENJIP", *address)
    assert allowed.returncode == 0, allowed.stderr
    assert stored_objects(receiver.settings) == []
    assert indexed_instances(receiver.settings) == []
