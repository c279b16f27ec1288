"""The receiver's own P-DATA reader (openjip.receiver.pdata): its command encoding against
pynetdicom's, fragmented PDUs both ways, other messages between C-STOREs on one association,
and peers that break off or send nonsense in the middle of a dataset."""

from __future__ import annotations

import struct
import time
from collections.abc import Callable
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE, evt
from pynetdicom.dimse_messages import C_STORE_RQ, C_STORE_RSP
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.dsutils import encode
from pynetdicom.pdu import P_DATA_TF
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    CTImageStorage,
    StudyRootQueryRetrieveInformationModelFind,
    Verification,
)
from receiver_peers import dataset_bytes, indexed_instances, scu, stored_objects

from openjip.receiver.commands import (
    COMMAND_FRAGMENT,
    LAST_FRAGMENT,
    StoreRequest,
    decode_command,
    encode_store_response,
    p_data_tf,
)
from openjip.receiver.incoming import incoming_root
from openjip.receiver.status import Status, Store
from openjip.storage.local import LocalObjectStore

CT = Path(get_testdata_file("CT_small.dcm"))
CT_UID = "1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322"


def _request_primitive(message_id: int = 7) -> C_STORE:
    request = C_STORE()
    request.MessageID = message_id
    request.AffectedSOPClassUID = CTImageStorage
    request.AffectedSOPInstanceUID = CT_UID
    request.Priority = 0x0002
    request.DataSet = BytesIO(b"\0" * 8)
    return request


def _command_bytes(message: Any, primitive: C_STORE) -> bytes:
    message.primitive_to_message(primitive)
    return bytes(encode(message.command_set, True, True))


@pytest.mark.parametrize(
    ("code", "comment"),
    [(Store.SUCCESS, ""), (Store.CANNOT_UNDERSTAND, "missing Series Instance UID")],
)
def test_store_response_is_encoded_as_pynetdicom_encodes_it(code: Status, comment: str) -> None:
    request_elements = decode_command(_command_bytes(C_STORE_RQ(), _request_primitive()))
    assert request_elements is not None
    request = StoreRequest.from_command(1, request_elements)
    assert request is not None
    response = C_STORE()
    response.MessageIDBeingRespondedTo = 7
    response.AffectedSOPClassUID = CTImageStorage
    response.AffectedSOPInstanceUID = CT_UID
    response.Status = code.code
    if comment:
        response.ErrorComment = comment
    assert encode_store_response(request, code, comment) == _command_bytes(C_STORE_RSP(), response)


def test_request_fields_are_read_from_pynetdicoms_command() -> None:
    command = _command_bytes(C_STORE_RQ(), _request_primitive(message_id=513))
    elements = decode_command(command)
    assert elements is not None
    request = StoreRequest.from_command(3, elements)
    assert request is not None
    assert (request.context_id, request.message_id) == (3, 513)
    assert (request.sop_class_uid, request.sop_instance_uid) == (CTImageStorage, CT_UID)
    assert decode_command(command[:-3]) is None  # value runs past the end
    assert decode_command(b"\x08\x00" + command[2:]) is None  # not group 0000


def test_commands_other_than_store_requests_are_not_taken() -> None:
    echo = Dataset()
    echo.CommandGroupLength = 0
    echo.AffectedSOPClassUID = Verification
    echo.CommandField = 0x0030
    echo.MessageID = 1
    echo.CommandDataSetType = 0x0101
    elements = decode_command(bytes(encode(echo, True, True)))
    assert elements is not None
    assert StoreRequest.from_command(1, elements) is None


def _stored_dataset(receiver: Any) -> bytes:
    (record,) = indexed_instances(receiver.settings)
    return dataset_bytes(LocalObjectStore(receiver.settings.storage_path).get(record.object_key))


def _explicit_dataset() -> bytes:
    buffer = DicomBytesIO()
    buffer.is_little_endian, buffer.is_implicit_VR = True, False
    write_dataset(buffer, dcmread(CT))
    return bytes(buffer.getvalue())


def test_command_and_dataset_in_many_small_pdus(receiver_factory: Callable[..., Any]) -> None:
    # The sender splits by the receiver's maximum PDU: 64 bytes put the command set into
    # three fragments and the 39 kB dataset into ~700 PDUs.
    receiver = receiver_factory(max_pdu=64)
    with scu(receiver.address, [(CTImageStorage, [ExplicitVRLittleEndian])]) as assoc:
        assert assoc.acceptor.maximum_length == 64
        assert assoc.send_c_store(dcmread(CT)).Status == 0x0000
    assert _stored_dataset(receiver) == _explicit_dataset()


def test_response_in_fragments_to_a_peer_with_small_pdus(running_receiver: Any) -> None:
    ae = AE(ae_title="SMALLPDU")
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 60
    ae.add_requested_context(CTImageStorage, [ExplicitVRLittleEndian])
    lengths: list[int] = []

    def on_pdu(event: evt.Event) -> None:
        if isinstance(event.pdu, P_DATA_TF):
            lengths.append(len(event.pdu.encode()) - 6)

    # 64 bytes: the C-STORE response (~150 bytes) needs three PDUs.
    assoc = ae.associate(
        running_receiver.host,
        running_receiver.port,
        ae_title="OPENJIP",
        max_pdu=64,
        evt_handlers=[(evt.EVT_PDU_RECV, on_pdu)],
    )
    try:
        assert assoc.is_established
        assert assoc.send_c_store(dcmread(CT)).Status == 0x0000
        assert len(lengths) >= 3 and max(lengths) <= 64
        broken = dcmread(CT)
        del broken.SeriesInstanceUID
        response = assoc.send_c_store(broken)
        assert response.Status == 0xC000
        assert "Series" in response.ErrorComment
    finally:
        assoc.release()
        ae.shutdown()


def test_other_messages_between_stores_on_one_association(receiver_factory: Any) -> None:
    running_receiver = receiver_factory(unknown_ae_allow=["echo", "store", "find"])
    contexts = [
        (Verification, [ImplicitVRLittleEndian]),
        (CTImageStorage, [ExplicitVRLittleEndian]),
        (StudyRootQueryRetrieveInformationModelFind, [ImplicitVRLittleEndian]),
    ]
    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.StudyInstanceUID = ""
    with scu(running_receiver.address, contexts) as assoc:
        assert assoc.send_c_echo().Status == 0x0000
        assert assoc.send_c_store(dcmread(CT)).Status == 0x0000
        found = [
            identifier
            for response, identifier in assoc.send_c_find(
                query, StudyRootQueryRetrieveInformationModelFind
            )
            if response.Status == 0xFF00
        ]
        assert [identifier.StudyInstanceUID for identifier in found] == [
            dcmread(CT).StudyInstanceUID
        ]
        assert assoc.send_c_store(dcmread(CT)).Status == 0x0000
        assert assoc.send_c_echo().Status == 0x0000


def _incoming_files(receiver: Any) -> list[Path]:
    return sorted(incoming_root(receiver.settings).rglob("*.dcm"))


def _wait_for(condition: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def _half_sent_store(assoc: Any) -> None:
    """The command and the first half of a dataset, then nothing."""
    context = assoc.accepted_contexts[0]
    command = _command_bytes(C_STORE_RQ(), _request_primitive())
    data = _explicit_dataset()
    raw = assoc.dul.socket.socket
    raw.sendall(p_data_tf(context.context_id, COMMAND_FRAGMENT | LAST_FRAGMENT, command))
    raw.sendall(p_data_tf(context.context_id, 0, data[: len(data) // 2]))


def test_abort_in_the_middle_of_a_dataset_leaves_nothing(
    running_receiver: Any, pdata_reader: str
) -> None:
    with scu(running_receiver.address, [(CTImageStorage, [ExplicitVRLittleEndian])]) as assoc:
        _half_sent_store(assoc)
        if pdata_reader == "openjip":  # pynetdicom gathers the dataset in memory
            _wait_for(lambda: len(_incoming_files(running_receiver)) == 1)
        assoc.abort()
    _wait_for(lambda: _incoming_files(running_receiver) == [])
    assert stored_objects(running_receiver.settings) == []
    assert indexed_instances(running_receiver.settings) == []


def test_a_broken_pdv_aborts_the_association_and_nothing_is_kept(running_receiver: Any) -> None:
    with scu(running_receiver.address, [(CTImageStorage, [ExplicitVRLittleEndian])]) as assoc:
        _half_sent_store(assoc)
        # A PDV item claiming more bytes than its PDU holds.
        assoc.dul.socket.socket.sendall(struct.pack(">BBLLBB", 0x04, 0, 6, 100, 1, 0))
        _wait_for(lambda: assoc.is_aborted)
    _wait_for(lambda: _incoming_files(running_receiver) == [])
    assert indexed_instances(running_receiver.settings) == []
    with scu(running_receiver.address, [(CTImageStorage, [ExplicitVRLittleEndian])]) as assoc:
        assert assoc.send_c_store(dcmread(CT)).Status == 0x0000
