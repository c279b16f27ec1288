"""The P-DATA of an established association, read by openjip: C-STORE requests are decoded,
streamed into a file and answered here; every other message goes on to pynetdicom.

pynetdicom turns each PDU into an event of its state machine, each PDV into a primitive and
each command set into a pydicom Dataset, and the response back again: ~3 ms of CPU per
instance, more than storing and indexing it. A P-DATA-TF PDU received in state Sta6
(association established) leaves the state machine where it is (action DT-2), so reading it
here changes nothing pynetdicom keeps track of. PDUs of other types, and the PDVs of any
message but a C-STORE request with a dataset, are handed to pynetdicom as its own reader
would hand them. A C-STORE response is one P-DATA-TF PDU, written by the DUL thread, which
is also where pynetdicom writes (DT-1), so writes never interleave.

Layouts: PDU and PDV item, PS3.8 9.3.5; message control header, PS3.8 E.2; command sets are
always implicit VR little endian, PS3.7 6.3.1; C-STORE fields, PS3.7 9.3.1.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pynetdicom.dul import DULServiceProvider
from pynetdicom.pdu_primitives import P_DATA

from openjip.receiver.filemeta import PREAMBLE, encode_file_meta
from openjip.receiver.status import Status, error_comment
from openjip.receiver.transport import IncomingFile, receive

if TYPE_CHECKING:  # scp imports this module (through reactive)
    from openjip.receiver.scp import StoreService

LOGGER = logging.getLogger(__name__)

P_DATA_TF = 0x04
PDU_TYPES = range(0x01, 0x08)
COMMAND_FRAGMENT = 0x01
LAST_FRAGMENT = 0x02

AFFECTED_SOP_CLASS_UID = 0x0002
COMMAND_FIELD = 0x0100
MESSAGE_ID = 0x0110
MESSAGE_ID_BEING_RESPONDED_TO = 0x0120
COMMAND_DATA_SET_TYPE = 0x0800
STATUS = 0x0900
ERROR_COMMENT = 0x0902
AFFECTED_SOP_INSTANCE_UID = 0x1000

C_STORE_RQ = 0x0001
C_STORE_RSP = 0x8001
NO_DATA_SET = 0x0101

_PDU_HEADER = struct.Struct(">BBL")
_PDV_HEADER = struct.Struct(">LBB")
_ELEMENT_HEADER = struct.Struct("<HHL")
_US = struct.Struct("<H")

_CHUNK = 512 * 1024
"""Bytes of dataset gathered from the socket before one write to the file."""
_MAX_COMMAND = 64 * 1024
"""Command sets are a few hundred bytes; a peer sending more is not speaking DICOM."""
_MAX_OTHER_PDU = 1024 * 1024
"""Release and abort PDUs are 10 bytes; any other PDU is an error in an established
association, but is still read (up to this size) so that pynetdicom answers it properly."""

# pynetdicom's events for "transport connection closed" and "invalid PDU received".
_CONNECTION_CLOSED = "Evt17"
_INVALID_PDU = "Evt19"


class ProtocolViolation(Exception):
    """The peer sent something the standard does not allow; the association is aborted."""


def decode_command(data: bytes | bytearray) -> dict[int, bytes] | None:
    """The elements of an implicit VR little endian command set by element number, with
    their raw values; ``None`` when it is not a well-formed group 0000."""
    elements: dict[int, bytes] = {}
    offset, end = 0, len(data)
    while offset < end:
        if end - offset < _ELEMENT_HEADER.size:
            return None
        group, element, length = _ELEMENT_HEADER.unpack_from(data, offset)
        offset += _ELEMENT_HEADER.size
        if group != 0x0000 or offset + length > end:
            return None
        elements[element] = bytes(data[offset : offset + length])
        offset += length
    return elements


def encode_command(elements: list[tuple[int, bytes]]) -> bytes:
    """A command set of even-length ``(element, value)`` pairs in ascending order, with its
    group length first."""
    body = b"".join(
        _ELEMENT_HEADER.pack(0x0000, element, len(value)) + value for element, value in elements
    )
    return _ELEMENT_HEADER.pack(0x0000, 0x0000, 4) + struct.pack("<L", len(body)) + body


def encode_store_response(request: StoreRequest, status: Status, comment: str = "") -> bytes:
    """The C-STORE-RSP command set answering ``request``."""
    elements = [
        (AFFECTED_SOP_CLASS_UID, request.sop_class_uid_value),
        (COMMAND_FIELD, _US.pack(C_STORE_RSP)),
        (MESSAGE_ID_BEING_RESPONDED_TO, _US.pack(request.message_id)),
        (COMMAND_DATA_SET_TYPE, _US.pack(NO_DATA_SET)),
        (STATUS, _US.pack(status.code)),
    ]
    if comment:
        text = error_comment(comment).encode("ascii", "replace")
        elements.append((ERROR_COMMENT, text + b" " * (len(text) % 2)))
    elements.append((AFFECTED_SOP_INSTANCE_UID, request.sop_instance_uid_value))
    return encode_command(elements)


def p_data_tf(context_id: int, control: int, fragment: bytes) -> bytes:
    """One P-DATA-TF PDU holding one PDV."""
    item_length = len(fragment) + 2
    return (
        _PDU_HEADER.pack(P_DATA_TF, 0, item_length + 4)
        + _PDV_HEADER.pack(item_length, context_id, control)
        + fragment
    )


def _uid(value: bytes) -> str:
    return value.rstrip(b"\0 ").decode("ascii", "replace")


@dataclass(frozen=True)
class StoreRequest:
    """The fields of a C-STORE request the receiver uses, with the UIDs' raw values (which
    the response repeats as they came)."""

    context_id: int
    message_id: int
    sop_class_uid_value: bytes
    sop_instance_uid_value: bytes

    @classmethod
    def from_command(cls, context_id: int, command: dict[int, bytes]) -> StoreRequest | None:
        """The request, if ``command`` is a well-formed C-STORE-RQ with a dataset."""
        try:
            (field,) = _US.unpack(command[COMMAND_FIELD])
            (message_id,) = _US.unpack(command[MESSAGE_ID])
            (data_set_type,) = _US.unpack(command[COMMAND_DATA_SET_TYPE])
            sop_class = command[AFFECTED_SOP_CLASS_UID]
            sop_instance = command[AFFECTED_SOP_INSTANCE_UID]
        except (KeyError, struct.error):
            return None
        if field != C_STORE_RQ or data_set_type == NO_DATA_SET:
            return None
        return cls(context_id, message_id, sop_class, sop_instance)

    @property
    def sop_class_uid(self) -> str:
        """Affected SOP Class UID."""
        return _uid(self.sop_class_uid_value)

    @property
    def sop_instance_uid(self) -> str:
        """Affected SOP Instance UID."""
        return _uid(self.sop_instance_uid_value)


@dataclass
class _Receiving:
    """A C-STORE request whose dataset is arriving."""

    request: StoreRequest
    file: IncomingFile
    context_abstract_syntax: str


class PDataReader:
    """Reads the PDUs of one established association for its DUL thread (see module doc)."""

    def __init__(
        self,
        dul: DULServiceProvider,
        service: StoreService,
        incoming_dir: Path,
        *,
        calling_ae: Callable[[], str],
    ) -> None:
        self._dul = dul
        self._service = service
        self._incoming_dir = incoming_dir
        self._calling_ae = calling_ae
        self._command = bytearray()
        self._receiving: _Receiving | None = None
        self._spare: IncomingFile | None = None
        self._chunk = memoryview(bytearray(_CHUNK))

    @property
    def _forwarding(self) -> bool:
        """Whether pynetdicom holds the command of a message whose dataset is still coming
        (its DIMSE layer keeps a message only until it is complete)."""
        return self._dul.assoc.dimse.message is not None

    @property
    def _socket(self) -> Any:
        assert self._dul.socket is not None and self._dul.socket.socket is not None
        return self._dul.socket.socket

    def read_pdu(self) -> None:
        """Read and act on one PDU; the socket has data. Failures become pynetdicom events
        (connection closed, invalid PDU), which abort the association."""
        try:
            self._read_pdu()
        except ProtocolViolation as exc:
            LOGGER.error("Invalid PDU from %s: %s", self._calling_ae(), exc)
            self.discard()
            self._dul.event_queue.put(_INVALID_PDU)
        except (OSError, EOFError) as exc:
            LOGGER.info("Connection lost: %s", exc or "closed by peer")
            self.discard()
            self._dul.event_queue.put(_CONNECTION_CLOSED)

    def discard(self) -> None:
        """Forget a dataset being received (the association ends without its response) and
        the temp file made ready for the next one."""
        if self._receiving is not None:
            self._receiving.file.remove()
            self._receiving = None
        if self._spare is not None:
            self._spare.remove()
            self._spare = None

    def _read_pdu(self) -> None:
        header = self._recv(_PDU_HEADER.size)
        pdu_type, _, length = _PDU_HEADER.unpack(header)
        if pdu_type not in PDU_TYPES:
            raise ProtocolViolation(f"unknown PDU type 0x{pdu_type:02X}")
        if pdu_type != P_DATA_TF:
            if length > _MAX_OTHER_PDU:
                raise ProtocolViolation(f"PDU type 0x{pdu_type:02X} of {length} bytes")
            self._hand_over_pdu(header + self._recv(length))
            return
        while length:
            if length < _PDV_HEADER.size:
                raise ProtocolViolation("P-DATA-TF shorter than its PDV item")
            item_length, context_id, control = _PDV_HEADER.unpack(self._recv(_PDV_HEADER.size))
            if item_length < 2 or item_length + 4 > length:
                raise ProtocolViolation(f"PDV item length {item_length} out of its PDU")
            length -= item_length + 4
            self._read_pdv(context_id, control, item_length - 2)

    def _read_pdv(self, context_id: int, control: int, size: int) -> None:
        if control & COMMAND_FRAGMENT:
            if self._receiving is not None or self._forwarding:
                raise ProtocolViolation("command fragment inside a dataset")
            if len(self._command) + size > _MAX_COMMAND:
                raise ProtocolViolation(f"command set longer than {_MAX_COMMAND} bytes")
            self._command += self._recv(size)
            if control & LAST_FRAGMENT:
                command, self._command = bytes(self._command), bytearray()
                self._command_received(context_id, command)
        elif self._receiving is not None:
            self._receive_data(size)
            if control & LAST_FRAGMENT:
                receiving, self._receiving = self._receiving, None
                self._answer(receiving)
        else:
            self._forward(context_id, control, self._recv(size))

    def _command_received(self, context_id: int, command: bytes) -> None:
        elements = decode_command(command)
        request = StoreRequest.from_command(context_id, elements) if elements else None
        if request is None:
            self._forward(context_id, COMMAND_FRAGMENT | LAST_FRAGMENT, command)
            return
        context = self._dul.assoc._accepted_cx.get(context_id)
        if context is None:
            raise ProtocolViolation(f"C-STORE on presentation context {context_id}, not accepted")
        file, self._spare = self._spare or IncomingFile(self._incoming_dir), None
        file.write(
            PREAMBLE
            + encode_file_meta(
                sop_class_uid=request.sop_class_uid,
                sop_instance_uid=request.sop_instance_uid,
                transfer_syntax=str(context.transfer_syntax[0]),
                source_ae=self._calling_ae(),
            )
        )
        self._receiving = _Receiving(request, file, str(context.abstract_syntax))

    def _receive_data(self, size: int) -> None:
        assert self._receiving is not None
        chunk, sock, file = self._chunk, self._socket, self._receiving.file
        while size:
            filled, wanted = 0, min(size, len(chunk))
            while filled < wanted:
                count = sock.recv_into(chunk[filled:wanted])
                if not count:
                    raise EOFError
                filled += count
            file.write(chunk[:filled])
            size -= filled

    def _answer(self, receiving: _Receiving) -> None:
        request = receiving.request
        receiving.file.close()
        status, comment = self._service.store(
            Path(receiving.file.name),
            write_error=receiving.file.error,
            sop_class_uid=request.sop_class_uid,
            context_abstract_syntax=receiving.context_abstract_syntax,
            calling_ae=self._calling_ae(),
        )
        self._respond(request, status, comment)
        # While the sender gets its next instance ready: tidy up (a stored file was moved
        # away already), and create the next temp file, which waits for the file system's
        # journal whenever another thread's fsync is committing it.
        receiving.file.remove()
        spare = IncomingFile(self._incoming_dir)
        if spare.error is None:
            self._spare = spare

    def _respond(self, request: StoreRequest, status: Status, comment: str) -> None:
        command = encode_store_response(request, status, comment)
        # A peer that receives small PDUs gets the command in several (PS3.8 9.3.1).
        peer_maximum = self._dul.assoc.requestor.maximum_length
        size = peer_maximum - 6 if peer_maximum else len(command)
        fragments = [command[offset : offset + size] for offset in range(0, len(command), size)]
        self._socket.sendall(
            b"".join(
                p_data_tf(
                    request.context_id,
                    COMMAND_FRAGMENT | (LAST_FRAGMENT if number == len(fragments) else 0),
                    fragment,
                )
                for number, fragment in enumerate(fragments, start=1)
            )
        )

    def _forward(self, context_id: int, control: int, fragment: bytes) -> None:
        """Give one PDV to pynetdicom's DIMSE layer, as its DT-2 action would."""
        primitive = P_DATA()
        pdv = [context_id, bytes([control]) + fragment]  # pynetdicom checks for a list
        primitive.presentation_data_value_list = [pdv]  # type: ignore[list-item]
        self._dul.assoc.dimse.receive_primitive(primitive)

    def _hand_over_pdu(self, data: bytes) -> None:
        """A PDU other than P-DATA-TF, to pynetdicom's state machine."""
        try:
            pdu, event = self._dul._decode_pdu(bytearray(data))
        except Exception as exc:  # as pynetdicom: any decoding failure aborts
            raise ProtocolViolation(f"undecodable PDU: {exc}") from exc
        self._dul.event_queue.put(event)
        self._dul._recv_pdu.put(pdu)

    def _recv(self, size: int) -> bytes:
        data = receive(self._socket, size)
        if len(data) < size:
            raise EOFError
        return data
