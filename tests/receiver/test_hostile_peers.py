"""The findings of the attack on the receiver (issue 16), each as a test: stalled and dripping
peers are cut off within their time limits, silent connections hold no thread, and every
C-STORE that cannot be stored is answered with a failure status, leaving no temp file and
nothing indexed."""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from raw_peer import (
    CT_IMAGE_STORAGE,
    EXPLICIT_LE,
    LAST,
    VERIFICATION,
    RawAssociation,
    associate_rq,
    closed_within,
    command_set,
    message,
    p_data,
    pdv,
    store_fields,
)
from receiver_peers import indexed_instances, stored_objects

from openjip.receiver.incoming import incoming_root

CT = Path(get_testdata_file("CT_small.dcm"))
CT_UID = str(dcmread(CT, stop_before_pixels=True).SOPInstanceUID)
CONTEXTS = [(1, CT_IMAGE_STORAGE, [EXPLICIT_LE]), (3, VERIFICATION, [EXPLICIT_LE])]
SLACK = 10.0
"""Seconds allowed beyond a limit on a loaded test machine."""


def _dataset(ds: Dataset | None = None) -> bytes:
    buffer = DicomBytesIO()
    buffer.is_little_endian, buffer.is_implicit_VR = True, False
    write_dataset(buffer, ds if ds is not None else dcmread(CT))
    return bytes(buffer.getvalue())


def _wait_for(condition: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def _nothing_left(receiver: Any) -> None:
    """No temp file remains, nothing was stored or indexed."""
    _wait_for(lambda: not list(incoming_root(receiver.settings).rglob("*.dcm")))
    assert stored_objects(receiver.settings) == []
    assert indexed_instances(receiver.settings) == []


def _echo(peer: RawAssociation) -> int | None:
    """C-ECHO on context 3; the status, ``None`` without response."""
    fields = {
        "AffectedSOPClassUID": VERIFICATION,
        "CommandField": 0x0030,
        "MessageID": 9,
        "CommandDataSetType": 0x0101,
    }
    peer.send(message(3, command_set(fields), None))
    response = peer.response()
    return None if response is None else int(response.Status)


def _store(peer: RawAssociation, command: bytes, dataset: bytes) -> Dataset | None:
    """Send a C-STORE on context 1; its response, ``None`` without one."""
    peer.send(message(1, command, dataset))
    return peer.response()


def _echo_works(receiver: Any, **kwargs: Any) -> bool:
    peer = RawAssociation.open(receiver.address, CONTEXTS, **kwargs)
    try:
        return _echo(peer) == 0x0000
    finally:
        peer.release()


def test_a_stalled_4_gib_pdv_is_aborted_within_the_idle_limit(
    receiver_factory: Callable[..., Any],
) -> None:
    receiver = receiver_factory(idle_timeout=1.0)
    peer = RawAssociation.open(receiver.address, CONTEXTS)
    peer.send(p_data(pdv(1, 0x03, command_set(store_fields(CT_UID)))))
    # A PDU and PDV declaring 4 GiB, 100 kB of it, then nothing.
    peer.send(struct.pack(">BBLLBB", 0x04, 0, 0xFFFFFFFF, 0xFFFFFFFB, 1, 0) + b"\0" * 100_000)
    started = time.monotonic()
    assert closed_within(peer.sock, 1.0 + SLACK)
    assert time.monotonic() - started >= 0.9  # the limit ended it, not an earlier refusal
    _nothing_left(receiver)
    assert _echo_works(receiver)


def test_an_association_silent_between_pdus_is_aborted_within_the_idle_limit(
    receiver_factory: Callable[..., Any],
) -> None:
    receiver = receiver_factory(idle_timeout=1.0)
    peer = RawAssociation.open(receiver.address, CONTEXTS)
    assert _echo(peer) == 0x0000
    started = time.monotonic()
    assert closed_within(peer.sock, 1.0 + SLACK)
    assert time.monotonic() - started >= 0.9


def test_a_pdu_dripped_byte_by_byte_is_aborted_within_the_pdu_limit(
    receiver_factory: Callable[..., Any],
) -> None:
    receiver = receiver_factory(idle_timeout=5.0, pdu_timeout=1.5)
    peer = RawAssociation.open(receiver.address, CONTEXTS)
    pdu = message(1, command_set(store_fields(CT_UID)), _dataset())
    started = time.monotonic()
    try:
        for byte in pdu[:200]:
            peer.send(bytes([byte]))
            time.sleep(0.05)
    except OSError:
        pass  # cut off while dripping
    assert closed_within(peer.sock, 1.5 + SLACK)
    assert time.monotonic() - started < 1.5 + SLACK
    _nothing_left(receiver)


def test_dripped_association_requests_are_closed_within_the_request_limit(
    receiver_factory: Callable[..., Any],
) -> None:
    receiver = receiver_factory(association_request_timeout=1.0)
    request = associate_rq(CONTEXTS)
    drippers = [socket.create_connection(receiver.address) for _ in range(16)]
    stop = threading.Event()

    def drip() -> None:
        for offset in range(len(request)):
            for sock in drippers:
                with contextlib.suppress(OSError):  # closed by the receiver already
                    sock.send(request[offset : offset + 1])
            if stop.wait(0.1):
                return

    thread = threading.Thread(target=drip, daemon=True)
    thread.start()
    try:
        assert _echo_works(receiver)  # meanwhile, a whole request is served
        assert all(closed_within(sock, 1.0 + SLACK) for sock in drippers)
    finally:
        stop.set()
        thread.join()
        for sock in drippers:
            sock.close()


def test_silent_connections_take_no_thread_and_no_association_slot(
    receiver_factory: Callable[..., Any],
) -> None:
    receiver = receiver_factory(max_negotiating=64, association_request_timeout=60)
    threads_before = threading.active_count()
    silent = []
    for number in range(300):  # 30 from each of ten addresses, 3 bytes each
        sock = socket.socket()
        sock.bind((f"127.0.0.{2 + number % 10}", 0))
        sock.connect(receiver.address)
        sock.send(b"\x01\x00\x00")
        silent.append(sock)
    try:
        assert _echo_works(receiver)
        assert threading.active_count() - threads_before < 10
        # At most 64 negotiate; the others were pushed out (closed) already.
        open_ones = [sock for sock in silent if not closed_within(sock, 0.01)]
        assert len(open_ones) <= 64
    finally:
        for sock in silent:
            sock.close()


def _nested_sequences(depth: int) -> bytes:
    """(0040,A730) ContentSequence nested ``depth`` deep, undefined lengths, explicit VR."""
    opening = struct.pack("<HH2sHL", 0x0040, 0xA730, b"SQ", 0, 0xFFFFFFFF)
    item = struct.pack("<HHL", 0xFFFE, 0xE000, 0xFFFFFFFF)
    closing = struct.pack("<HHL", 0xFFFE, 0xE00D, 0) + struct.pack("<HHL", 0xFFFE, 0xE0DD, 0)
    return (opening + item) * depth + closing * depth


def _with_nested_sequences(depth: int) -> bytes:
    ds = dcmread(CT)
    before, after = Dataset(), Dataset()
    for element in ds:
        (before if element.tag < 0x0040A730 else after).add(element)
    return _dataset(before) + _nested_sequences(depth) + _dataset(after)


def _refused_cleanly(
    receiver: Any, response: Dataset | None, peer: RawAssociation, *, may_abort: bool = False
) -> None:
    """A failure response with a comment came, nothing is left, the association works on;
    with ``may_abort`` an association ended at once (A-ABORT) is as good."""
    if response is None and may_abort:
        assert closed_within(peer.sock, SLACK)
        _nothing_left(receiver)
        return
    assert response is not None, "no C-STORE response"
    assert int(response.Status) & 0xF000 in (0xA000, 0xC000), hex(response.Status)
    assert response.get("ErrorComment")
    assert _echo(peer) == 0x0000
    peer.release()
    _nothing_left(receiver)


def test_sequences_nested_a_thousand_deep_are_answered(
    receiver_factory: Callable[..., Any],
) -> None:
    receiver = receiver_factory()
    peer = RawAssociation.open(receiver.address, CONTEXTS)
    response = _store(peer, command_set(store_fields(CT_UID)), _with_nested_sequences(1000))
    assert response is not None, "no C-STORE response"
    if int(response.Status) != 0x0000:  # refused: then cleanly
        _refused_cleanly(receiver, response, peer)
    else:
        peer.release()


@pytest.mark.parametrize(
    "uid",
    [
        "1.2.3.\xe9".encode("latin-1") + b"\0",  # non-ASCII
        b"../../../../etc/passwd",
        b"A" * 4000,
        b"1.2\x00.3",  # embedded null character
        b"1.2.3.4.5.6.7.8.9\0",  # a valid UID, not the dataset's
        b"1.2.3\n",
    ],
    ids=["non-ascii", "traversal", "4000-chars", "embedded-null", "not-the-datasets", "newline"],
)
def test_an_affected_sop_instance_uid_that_is_not_the_datasets_is_refused(
    receiver_factory: Callable[..., Any], pdata_reader: str, uid: bytes
) -> None:
    receiver = receiver_factory()
    fields = store_fields(CT_UID)
    del fields["AffectedSOPInstanceUID"]
    peer = RawAssociation.open(receiver.address, CONTEXTS)
    response = _store(peer, command_set(fields, raw={0x1000: uid}), _dataset())
    # pynetdicom's reader aborts a command it cannot decode (a UID over 64 characters).
    _refused_cleanly(receiver, response, peer, may_abort=pdata_reader == "pynetdicom")


@pytest.mark.parametrize("missing", ["AffectedSOPInstanceUID", "MessageID", "AffectedSOPClassUID"])
def test_a_store_request_missing_a_field_gets_cannot_understand(
    receiver_factory: Callable[..., Any], missing: str
) -> None:
    receiver = receiver_factory()
    fields = store_fields(CT_UID)
    del fields[missing]
    peer = RawAssociation.open(receiver.address, CONTEXTS)
    response = _store(peer, command_set(fields), _dataset())
    _refused_cleanly(receiver, response, peer)
    assert response is not None and response.Status == 0xC000
    assert missing in response.ErrorComment


def test_fragments_that_change_presentation_context_abort_and_store_nothing(
    receiver_factory: Callable[..., Any],
) -> None:
    receiver = receiver_factory()
    contexts = [(1, CT_IMAGE_STORAGE, [EXPLICIT_LE]), (5, CT_IMAGE_STORAGE, [EXPLICIT_LE])]
    peer = RawAssociation.open(receiver.address, contexts)
    data = _dataset()
    half = len(data) // 2
    peer.send(p_data(pdv(1, 0x03, command_set(store_fields(CT_UID)))))
    peer.send(p_data(pdv(1, 0x00, data[:half])))
    peer.send(p_data(pdv(5, LAST, data[half:])))
    assert peer.response() is None  # aborted, no response
    assert closed_within(peer.sock, SLACK)
    _nothing_left(receiver)
