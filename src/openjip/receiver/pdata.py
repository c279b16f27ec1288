"""The P-DATA of an established association, read by openjip: C-STORE requests are decoded,
streamed into a file and answered here; every other message goes on to pynetdicom.

pynetdicom turns each PDU into an event of its state machine, each PDV into a primitive and
each command set into a pydicom Dataset, and the response back again: ~3 ms of CPU per
instance, more than storing and indexing it. A P-DATA-TF PDU received in state Sta6
(association established) leaves the state machine where it is (action DT-2), so reading it
here changes nothing pynetdicom keeps track of. PDUs of other types, and the PDVs of any
message but a C-STORE request, are handed to pynetdicom as its own reader would hand them.
A C-STORE response is one P-DATA-TF PDU, written by the DUL thread, which is also where
pynetdicom writes (DT-1), so writes never interleave.

Every C-STORE request gets a response: a request missing a field, naming invalid UIDs or
failing in any way while stored is refused with a status and an error comment, and its temp
file is removed whatever happens. All PDVs of one message must stay on its presentation
context; a peer that breaks the protocol, or lets a time limit pass, is aborted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pynetdicom.dul import DULServiceProvider
from pynetdicom.pdu_primitives import P_DATA

from openjip.receiver.commands import (
    COMMAND_FRAGMENT,
    LAST_FRAGMENT,
    P_DATA_TF,
    PDU_HEADER,
    PDU_TYPES,
    PDV_HEADER,
    StoreRequest,
    decode_command,
    encode_store_response,
    p_data_tf,
)
from openjip.receiver.filemeta import PREAMBLE, encode_file_meta
from openjip.receiver.incoming import IncomingFile
from openjip.receiver.status import Status, Store
from openjip.receiver.store import Answer, StoreService, check_command_uids
from openjip.receiver.transport import Stalled, TimedSocket

LOGGER = logging.getLogger(__name__)

_CHUNK = 512 * 1024
"""Bytes of dataset gathered from the socket before one write to the file."""
_MAX_COMMAND = 64 * 1024
"""Command sets are a few hundred bytes; a peer sending more is not speaking DICOM."""
_MAX_OTHER_PDU = 1024 * 1024
"""Release and abort PDUs are 10 bytes; any other PDU is an error in an established
association, but is still read (up to this size) so that pynetdicom answers it properly."""

# pynetdicom's event for "transport connection closed".
_CONNECTION_CLOSED = "Evt17"


class ProtocolViolation(Exception):
    """The peer sent something the standard does not allow; the association is aborted."""


@dataclass
class _Receiving:
    """A C-STORE request whose dataset is arriving: into ``file``, or, when the request is
    refused already (``refusal``), nowhere."""

    request: StoreRequest
    file: IncomingFile | None
    context_abstract_syntax: str
    refusal: Answer | None = None


class PDataReader:
    """Reads the PDUs of one established association for its DUL thread (see module doc)."""

    def __init__(
        self,
        dul: DULServiceProvider,
        service: StoreService,
        incoming_dir: Path,
        timed: TimedSocket,
        *,
        calling_ae: Callable[[], str],
    ) -> None:
        self._dul = dul
        self._service = service
        self._incoming_dir = incoming_dir
        self._timed = timed
        self._calling_ae = calling_ae
        self._command = bytearray()
        self._context_id: int | None = None
        """Presentation context of the message being received (``None`` between messages)."""
        self._receiving: _Receiving | None = None
        self._spare: IncomingFile | None = None
        self._chunk: memoryview | None = None
        """Allocated with the first dataset: an idle association costs no 512 kB."""

    @property
    def in_message(self) -> bool:
        """Whether a message (command or dataset) is being received."""
        return self._context_id is not None

    @property
    def _forwarding(self) -> bool:
        """Whether pynetdicom holds the command of a message whose dataset is still coming
        (its DIMSE layer keeps a message only until it is complete)."""
        return self._dul.assoc.dimse.message is not None

    def read_pdu(self) -> None:
        """Read and act on one PDU; the socket has data. Failures become pynetdicom events
        (connection closed, invalid PDU), which abort the association."""
        try:
            self._read_pdu()
        except ProtocolViolation as exc:
            # Aborted here, not by pynetdicom (AA-8), which would go on reading the rest of
            # the broken message as PDUs until the release timeout.
            LOGGER.error("Invalid PDU from %s, aborting: %s", self._calling_ae(), exc)
            self.discard()
            self._timed.abort()
            self._dul.event_queue.put(_CONNECTION_CLOSED)
        except Stalled as exc:
            LOGGER.warning("Association with %s aborted: %s", self._calling_ae(), exc)
            self.discard()
            self._dul.event_queue.put(_CONNECTION_CLOSED)
        except (OSError, EOFError) as exc:
            LOGGER.info("Connection lost: %s", exc or "closed by peer")
            self.discard()
            self._dul.event_queue.put(_CONNECTION_CLOSED)

    def discard(self) -> None:
        """Forget a dataset being received (the association ends without its response) and
        the temp file made ready for the next one."""
        if self._receiving is not None:
            if self._receiving.file is not None:
                self._receiving.file.remove()
            self._receiving = None
        if self._spare is not None:
            self._spare.remove()
            self._spare = None

    def _read_pdu(self) -> None:
        header = self._recv(PDU_HEADER.size)
        pdu_type, _, length = PDU_HEADER.unpack(header)
        if pdu_type not in PDU_TYPES:
            raise ProtocolViolation(f"unknown PDU type 0x{pdu_type:02X}")
        if pdu_type != P_DATA_TF:
            if length > _MAX_OTHER_PDU:
                raise ProtocolViolation(f"PDU type 0x{pdu_type:02X} of {length} bytes")
            self._hand_over_pdu(header + self._recv(length))
            return
        while length:
            if length < PDV_HEADER.size:
                raise ProtocolViolation("P-DATA-TF shorter than its PDV item")
            item_length, context_id, control = PDV_HEADER.unpack(self._recv(PDV_HEADER.size))
            if item_length < 2 or item_length + 4 > length:
                raise ProtocolViolation(f"PDV item length {item_length} out of its PDU")
            length -= item_length + 4
            self._read_pdv(context_id, control, item_length - 2)

    def _read_pdv(self, context_id: int, control: int, size: int) -> None:
        if self._context_id is None:
            self._context_id = context_id
        elif context_id != self._context_id:
            raise ProtocolViolation(
                f"fragment on presentation context {context_id} inside a message on "
                f"context {self._context_id}"
            )
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
                self._context_id = None
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
        abstract_syntax = str(context.abstract_syntax)
        refusal = (
            (Store.CANNOT_UNDERSTAND, request.problem)
            if request.problem
            else check_command_uids(request.sop_class_uid, request.sop_instance_uid)
        )
        if not request.has_data_set:
            self._context_id = None
            self._refuse(request, refusal or (Store.CANNOT_UNDERSTAND, "no dataset"))
            return
        if refusal is not None:
            self._receiving = _Receiving(request, None, abstract_syntax, refusal)
            return
        file, self._spare = self._spare or IncomingFile(self._incoming_dir), None
        self._receiving = _Receiving(request, file, abstract_syntax)
        file.write(
            PREAMBLE
            + encode_file_meta(
                sop_class_uid=request.sop_class_uid,
                sop_instance_uid=request.sop_instance_uid,
                transfer_syntax=str(context.transfer_syntax[0]),
                source_ae=self._calling_ae(),
            )
        )

    def _receive_data(self, size: int) -> None:
        assert self._receiving is not None
        if self._chunk is None:
            self._chunk = memoryview(bytearray(_CHUNK))
        chunk, timed, file = self._chunk, self._timed, self._receiving.file
        while size:
            filled, wanted = 0, min(size, len(chunk))
            while filled < wanted:
                count = timed.recv_into(chunk[filled:wanted])
                if not count:
                    raise EOFError
                filled += count
            if file is not None:
                file.write(chunk[:filled])
            size -= filled

    def _answer(self, receiving: _Receiving) -> None:
        request, file = receiving.request, receiving.file
        if file is None:
            assert receiving.refusal is not None
            self._refuse(request, receiving.refusal)
            return
        try:
            status, comment = self._service.store(
                file,
                sop_class_uid=request.sop_class_uid,
                sop_instance_uid=request.sop_instance_uid,
                context_abstract_syntax=receiving.context_abstract_syntax,
                calling_ae=self._calling_ae(),
            )
            self._respond(request, status, comment)
        finally:
            # While the sender gets its next instance ready: tidy up (a stored file was moved
            # away already), and create the next temp file, which waits for the file system's
            # journal whenever another thread's fsync is committing it.
            file.remove()
        spare = IncomingFile(self._incoming_dir)
        if spare.error is None:
            self._spare = spare

    def _refuse(self, request: StoreRequest, refusal: Answer) -> None:
        self._service.refused(*refusal, self._calling_ae())
        self._respond(request, *refusal)

    def _respond(self, request: StoreRequest, status: Status, comment: str) -> None:
        command = encode_store_response(request, status, comment)
        # A peer that receives small PDUs gets the command in several (PS3.8 9.3.1).
        peer_maximum = self._dul.assoc.requestor.maximum_length
        size = peer_maximum - 6 if peer_maximum else len(command)
        fragments = [command[offset : offset + size] for offset in range(0, len(command), size)]
        self._timed.sendall(
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
        if not self._forwarding:  # the message is complete (or was dropped)
            self._context_id = None

    def _hand_over_pdu(self, data: bytes) -> None:
        """A PDU other than P-DATA-TF, to pynetdicom's state machine."""
        try:
            pdu, event = self._dul._decode_pdu(bytearray(data))
        except Exception as exc:  # as pynetdicom: any decoding failure aborts
            raise ProtocolViolation(f"undecodable PDU: {exc}") from exc
        self._dul.event_queue.put(event)
        self._dul._recv_pdu.put(pdu)

    def _recv(self, size: int) -> bytes:
        data = self._timed.recv(size)
        if len(data) < size:
            raise EOFError
        return data
