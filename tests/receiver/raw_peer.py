"""A DICOM peer made of bytes: it associates, sends P-DATA and reads responses exactly as
told, so tests (and the protocol fuzzer) can send what no well-behaved library would.

Layouts follow PS3.8 9.3 (PDUs and items) and PS3.8 E.2 (message control header); command
sets are encoded by pydicom (implicit VR little endian), not by the code under test.
"""

from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass, field
from io import BytesIO

from pydicom.dataset import Dataset
from pynetdicom.dsutils import decode, encode

APPLICATION_CONTEXT = b"1.2.840.10008.3.1.1.1"
IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
VERIFICATION = "1.2.840.10008.1.1"
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
COMMAND, LAST = 0x01, 0x02


def _item(item_type: int, body: bytes) -> bytes:
    return struct.pack(">BBH", item_type, 0, len(body)) + body


def _uid(value: str) -> bytes:
    return value.encode()


def associate_rq(
    contexts: list[tuple[int, str, list[str]]],
    *,
    calling_ae: str = "RAWPEER",
    called_ae: str = "OPENJIP",
    max_pdu: int = 16384,
) -> bytes:
    """An A-ASSOCIATE-RQ PDU proposing ``(context id, abstract syntax, [syntaxes])``."""
    body = struct.pack(">HH", 1, 0) + called_ae.ljust(16).encode() + calling_ae.ljust(16).encode()
    body += b"\0" * 32 + _item(0x10, APPLICATION_CONTEXT)
    for context_id, abstract, syntaxes in contexts:
        sub = _item(0x30, _uid(abstract)) + b"".join(_item(0x40, _uid(ts)) for ts in syntaxes)
        body += _item(0x20, struct.pack(">BBBB", context_id, 0, 0, 0) + sub)
    user = _item(0x51, struct.pack(">L", max_pdu)) + _item(0x52, b"1.2.826.0.1.3680043.9.7433")
    body += _item(0x50, user)
    return struct.pack(">BBL", 0x01, 0, len(body)) + body


def pdv(context_id: int, control: int, fragment: bytes) -> bytes:
    """One PDV item."""
    return struct.pack(">LBB", len(fragment) + 2, context_id, control) + fragment


def p_data(*pdvs: bytes) -> bytes:
    """A P-DATA-TF PDU holding ``pdvs``."""
    body = b"".join(pdvs)
    return struct.pack(">BBL", 0x04, 0, len(body)) + body


def command_set(fields: dict[str, object], *, raw: dict[int, bytes] | None = None) -> bytes:
    """A command set of ``fields`` (keyword: value) with its group length, as pydicom
    encodes it; ``raw`` elements (element number of group 0000: value bytes) are appended
    as given, whatever their content."""
    ds = Dataset()
    ds.CommandGroupLength = 0
    for keyword, value in fields.items():
        setattr(ds, keyword, value)
    encoded = bytes(encode(ds, True, True) or b"")
    for element, value in sorted((raw or {}).items()):
        encoded += struct.pack("<HHL", 0x0000, element, len(value)) + value
    return encoded[:8] + struct.pack("<L", len(encoded) - 12) + encoded[12:]


def store_fields(sop_instance_uid: str, *, message_id: int = 1) -> dict[str, object]:
    """The fields of a C-STORE-RQ of a CT image with a dataset."""
    return {
        "AffectedSOPClassUID": CT_IMAGE_STORAGE,
        "CommandField": 0x0001,
        "MessageID": message_id,
        "Priority": 0,
        "CommandDataSetType": 0x0000,
        "AffectedSOPInstanceUID": sop_instance_uid,
    }


def message(context_id: int, command: bytes, dataset: bytes | None, *, piece: int = 16000) -> bytes:
    """The P-DATA-TF PDUs of one message, fragments of at most ``piece`` bytes."""
    pdus = [p_data(pdv(context_id, COMMAND | LAST, command))]
    if dataset is not None:
        chunks = [dataset[i : i + piece] for i in range(0, len(dataset), piece)] or [b""]
        for number, chunk in enumerate(chunks, start=1):
            pdus.append(p_data(pdv(context_id, LAST if number == len(chunks) else 0, chunk)))
    return b"".join(pdus)


@dataclass
class RawAssociation:
    """An association opened and driven by hand."""

    sock: socket.socket
    accepted: dict[int, str] = field(default_factory=dict)
    """Accepted presentation contexts: id -> transfer syntax."""

    @classmethod
    def open(
        cls,
        address: tuple[str, int],
        contexts: list[tuple[int, str, list[str]]],
        *,
        calling_ae: str = "RAWPEER",
        timeout: float = 30,
        source: str = "127.0.0.1",
    ) -> RawAssociation:
        """Connect from ``source`` and associate; ``ConnectionError`` unless accepted."""
        sock = socket.create_connection(address, timeout=timeout, source_address=(source, 0))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        peer = cls(sock)
        sock.sendall(associate_rq(contexts, calling_ae=calling_ae))
        pdu = peer.read_pdu()
        if pdu is None or pdu[0] != 0x02:
            sock.close()
            raise ConnectionError(f"association not accepted: {pdu and pdu[0]}")
        peer.accepted = _accepted_contexts(pdu[1])
        return peer

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_pdu(self) -> tuple[int, bytes] | None:
        """The next PDU (type, body); ``None`` when the connection closed or timed out."""
        header = self._read(6)
        if header is None:
            return None
        pdu_type, _, length = struct.unpack(">BBL", header)
        body = self._read(length)
        return None if body is None else (pdu_type, body)

    def response(self) -> Dataset | None:
        """The next command set received (a whole message without dataset), or ``None`` when
        the association ended (A-ABORT, A-RELEASE, closed) instead."""
        command = b""
        while True:
            pdu = self.read_pdu()
            if pdu is None or pdu[0] != 0x04:
                return None
            body, offset = pdu[1], 0
            while offset < len(body):
                length, _, control = struct.unpack_from(">LBB", body, offset)
                command += body[offset + 6 : offset + 4 + length]
                offset += 4 + length
                if control & LAST:
                    return decode(BytesIO(command), True, True)

    def release(self) -> bool:
        """Release; ``True`` when the peer answered with A-RELEASE-RP."""
        try:
            self.sock.sendall(struct.pack(">BBLL", 0x05, 0, 4, 0))
            pdu = self.read_pdu()
            return pdu is not None and pdu[0] == 0x06
        except OSError:
            return False
        finally:
            self.sock.close()

    def _read(self, size: int) -> bytes | None:
        data = b""
        while len(data) < size:
            try:
                part = self.sock.recv(size - len(data))
            except OSError:
                return None
            if not part:
                return None
            data += part
        return data


def _accepted_contexts(body: bytes) -> dict[int, str]:
    accepted: dict[int, str] = {}
    offset = 68  # version, reserved, AE titles, reserved
    while offset + 4 <= len(body):
        item_type, _, length = struct.unpack_from(">BBH", body, offset)
        value = body[offset + 4 : offset + 4 + length]
        if item_type == 0x21 and value[2] == 0:  # result: acceptance
            syntax = value[4 + 4 :].rstrip(b"\0").decode()
            accepted[value[0]] = syntax
        offset += 4 + length
    return accepted


def closed_within(sock: socket.socket, seconds: float) -> bool:
    """Whether the peer closed (or reset) ``sock`` within ``seconds``, whatever it sent."""
    deadline = time.monotonic() + seconds
    while (remaining := deadline - time.monotonic()) > 0:
        sock.settimeout(remaining)
        try:
            if not sock.recv(65536):
                return True
        except TimeoutError:
            return False
        except OSError:
            return True
    return False
