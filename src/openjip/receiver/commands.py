"""DIMSE command sets and P-DATA-TF PDUs as bytes: what the P-DATA reader decodes and the
C-STORE responses it encodes.

Layouts: PDU and PDV item, PS3.8 9.3.5; message control header, PS3.8 E.2; command sets are
always implicit VR little endian, PS3.7 6.3.1; C-STORE fields, PS3.7 9.3.1.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from openjip.receiver.status import Status, error_comment

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

PDU_HEADER = struct.Struct(">BBL")
PDV_HEADER = struct.Struct(">LBB")
_ELEMENT_HEADER = struct.Struct("<HHL")
_US = struct.Struct("<H")


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
        PDU_HEADER.pack(P_DATA_TF, 0, item_length + 4)
        + PDV_HEADER.pack(item_length, context_id, control)
        + fragment
    )


def _uid(value: bytes) -> str:
    return value.rstrip(b"\0 ").decode("ascii", "replace")


@dataclass(frozen=True)
class StoreRequest:
    """The fields of a C-STORE request the receiver uses, with the UIDs' raw values (which
    the response repeats as they came), and what makes it unanswerable but by a refusal."""

    context_id: int
    message_id: int
    sop_class_uid_value: bytes
    sop_instance_uid_value: bytes
    has_data_set: bool = True
    problem: str = ""
    """Why the request must be refused whatever its dataset (a required field missing)."""

    @classmethod
    def from_command(cls, context_id: int, command: dict[int, bytes]) -> StoreRequest | None:
        """The request, if ``command`` is a C-STORE-RQ (with a ``problem`` if a field it
        needs is missing or malformed); ``None`` for any other command."""
        if _number(command, COMMAND_FIELD) != C_STORE_RQ:
            return None
        missing = [
            name
            for name, element in (
                ("MessageID", MESSAGE_ID),
                ("AffectedSOPClassUID", AFFECTED_SOP_CLASS_UID),
                ("AffectedSOPInstanceUID", AFFECTED_SOP_INSTANCE_UID),
            )
            if not command.get(element)
            or (element == MESSAGE_ID and _number(command, element) is None)
        ]
        data_set_type = _number(command, COMMAND_DATA_SET_TYPE)
        problem = f"{', '.join(missing)} missing in the C-STORE request" if missing else ""
        return cls(
            context_id,
            _number(command, MESSAGE_ID) or 0,
            command.get(AFFECTED_SOP_CLASS_UID, b""),
            command.get(AFFECTED_SOP_INSTANCE_UID, b""),
            # PS3.7 9.3.1.1: a C-STORE-RQ always has a dataset; without the field, expect one.
            has_data_set=data_set_type != NO_DATA_SET,
            problem=problem or ("" if data_set_type != NO_DATA_SET else "C-STORE without dataset"),
        )

    @property
    def sop_class_uid(self) -> str:
        """Affected SOP Class UID."""
        return _uid(self.sop_class_uid_value)

    @property
    def sop_instance_uid(self) -> str:
        """Affected SOP Instance UID."""
        return _uid(self.sop_instance_uid_value)


def _number(command: dict[int, bytes], element: int) -> int | None:
    value = command.get(element)
    if value is None or len(value) != _US.size:
        return None
    number: int = _US.unpack(value)[0]
    return number
