"""A seeded protocol fuzzer of the receiver: valid exchanges (associate, C-STORE, C-ECHO,
release) whose bytes are mutated (PDU and PDV lengths, control headers, presentation
contexts, command fields, random bytes, truncation, reordering, tiny pieces), sent by raw
peers several at a time.

After each batch the receiver must be alive (C-ECHO answered on a clean association), have no
temp file left, have indexed only instances it acknowledged with 0x0000 (each case stores its
own SOP Instance UID), and its memory and threads must stay flat. The same case comes from
the same seed, so a failure is replayed with ``--seed S --cases 1 --first N``.

``make fuzz`` runs it long (``PROTOCOL_FUZZ_ARGS="--cases 20000"``); the test suite runs a
few hundred cases (tests/fuzz/test_protocol_fuzz.py).
"""

from __future__ import annotations

import argparse
import faulthandler
import gc
import random
import socket
import struct
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "receiver"))

from raw_peer import (
    CT_IMAGE_STORAGE,
    EXPLICIT_LE,
    VERIFICATION,
    RawAssociation,
    associate_rq,
    command_set,
    message,
    store_fields,
)
from receiver_peers import dataset_bytes

CONTEXTS = [(1, CT_IMAGE_STORAGE, [EXPLICIT_LE]), (3, VERIFICATION, [EXPLICIT_LE])]
UID_ROOT = "1.2.826.0.1.3680043.9.7433.77."
"""Each case's SOP Instance UID: this root and 10^11 + the case number (12 digits)."""
PLACEHOLDER = UID_ROOT + "9" * 12
FIELDS_TO_BREAK = (
    "AffectedSOPClassUID",
    "CommandField",
    "MessageID",
    "CommandDataSetType",
    "AffectedSOPInstanceUID",
    "Priority",
)


def case_uid(number: int) -> str:
    return f"{UID_ROOT}{10**11 + number}"


def _base_dataset() -> bytes:
    """A small CT instance's dataset (explicit VR little endian) with the placeholder UID."""
    from pydicom import dcmread
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset

    from openjip.phantom import write_ct_series

    with tempfile.TemporaryDirectory() as folder:
        path = write_ct_series(Path(folder), slices=2, rows=16, columns=16)[0]
        ds = dcmread(path)
    ds.SOPInstanceUID = PLACEHOLDER
    buffer = DicomBytesIO()
    buffer.is_little_endian, buffer.is_implicit_VR = True, False
    write_dataset(buffer, ds)
    return bytes(buffer.getvalue())


@dataclass
class Case:
    """What one raw peer sends, in pieces: its association request, then, once accepted,
    the rest."""

    number: int
    mutation: str
    request: list[bytes]
    rest: list[bytes]


class CaseMaker:
    """Builds the mutated exchange of case ``number`` from ``seed``, the same every time."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.dataset = _base_dataset()

    def make(self, number: int) -> Case:
        rng = random.Random(f"{self.seed}/{number}")
        uid = case_uid(number).encode()
        fields = store_fields(case_uid(number), message_id=rng.randrange(1, 65536))
        mutation = rng.choice(MUTATIONS)
        pdus = [associate_rq(CONTEXTS, calling_ae="FUZZER")]
        command = command_set(fields)
        dataset = self.dataset.replace(PLACEHOLDER.encode(), uid)
        if mutation == "command field":
            command = _break_field(rng, fields)
        pdus.extend(_pdus(message(1, command, dataset, piece=rng.choice((64, 1000, 16000)))))
        pdus.extend(_pdus(message(3, _echo_command(), None)))
        pdus.append(struct.pack(">BBLL", 0x05, 0, 4, 0))  # A-RELEASE-RQ
        if mutation != "command field":
            pdus = MUTATORS[mutation](rng, pdus)
        split = rng.random() < 0.2
        request, rest = pdus[0], b"".join(pdus[1:])
        return Case(
            number,
            mutation,
            _split(rng, request) if split else [request],
            _split(rng, rest) if split else [rest],
        )


def _pdus(stream: bytes) -> list[bytes]:
    pdus, offset = [], 0
    while offset < len(stream):
        (length,) = struct.unpack_from(">L", stream, offset + 2)
        pdus.append(stream[offset : offset + 6 + length])
        offset += 6 + length
    return pdus


def _echo_command() -> bytes:
    fields = {
        "AffectedSOPClassUID": VERIFICATION,
        "CommandField": 0x0030,
        "MessageID": 7,
        "CommandDataSetType": 0x0101,
    }
    return command_set(fields)


def _break_field(rng: random.Random, fields: dict[str, object]) -> bytes:
    name = rng.choice(FIELDS_TO_BREAK)
    broken = dict(fields)
    choice = rng.randrange(3)
    if choice == 0:
        del broken[name]
        return command_set(broken)
    if choice == 1 and isinstance(broken[name], int):
        broken[name] = rng.choice((0, 1, 0x0101, 0x8001, 0xFFFF, rng.randrange(65536)))
        return command_set(broken)
    element = {"AffectedSOPClassUID": 0x0002, "AffectedSOPInstanceUID": 0x1000}.get(name, 0x1000)
    broken.pop("AffectedSOPClassUID" if element == 0x0002 else "AffectedSOPInstanceUID")
    garbage = bytes(rng.randrange(256) for _ in range(rng.choice((0, 1, 7, 64, 65, 300))))
    return command_set(broken, raw={element: garbage})


def _index(rng: random.Random, pdus: list[bytes], *, data_only: bool = False) -> int:
    candidates = [i for i, pdu in enumerate(pdus) if not data_only or pdu[0] == 0x04]
    return rng.choice(candidates)


def _replace(pdus: list[bytes], index: int, pdu: bytes) -> list[bytes]:
    return [*pdus[:index], pdu, *pdus[index + 1 :]]


def _flip_bytes(rng: random.Random, pdus: list[bytes]) -> list[bytes]:
    index = _index(rng, pdus)
    pdu = bytearray(pdus[index])
    for _ in range(rng.randrange(1, 8)):
        pdu[rng.randrange(len(pdu))] = rng.randrange(256)
    return _replace(pdus, index, bytes(pdu))


def _pdu_length(rng: random.Random, pdus: list[bytes]) -> list[bytes]:
    index = _index(rng, pdus)
    pdu = pdus[index]
    length = rng.choice((0, 1, 5, len(pdu) - 7, len(pdu) + 100, 0x7FFFFFFF, 0xFFFFFFFF))
    return _replace(pdus, index, pdu[:2] + struct.pack(">L", length % 2**32) + pdu[6:])


def _pdv_length(rng: random.Random, pdus: list[bytes]) -> list[bytes]:
    index = _index(rng, pdus, data_only=True)
    pdu = pdus[index]
    length = rng.choice((0, 1, 2, len(pdu) - 10, len(pdu), 0xFFFFFFFB, rng.randrange(2**32)))
    return _replace(pdus, index, pdu[:6] + struct.pack(">L", length) + pdu[10:])


def _control_header(rng: random.Random, pdus: list[bytes]) -> list[bytes]:
    index = _index(rng, pdus, data_only=True)
    pdu = pdus[index]
    return _replace(pdus, index, pdu[:11] + bytes([rng.randrange(256)]) + pdu[12:])


def _context(rng: random.Random, pdus: list[bytes]) -> list[bytes]:
    index = _index(rng, pdus, data_only=True)
    pdu = pdus[index]
    context = rng.choice((0, 2, 3, 5, 255, rng.randrange(256)))
    return _replace(pdus, index, pdu[:10] + bytes([context]) + pdu[11:])


def _pdu_type(rng: random.Random, pdus: list[bytes]) -> list[bytes]:
    index = _index(rng, pdus)
    pdu = pdus[index]
    return _replace(pdus, index, bytes([rng.choice((0, 1, 2, 3, 5, 6, 7, 8, 0xFF))]) + pdu[1:])


def _truncate(rng: random.Random, pdus: list[bytes]) -> list[bytes]:
    stream = b"".join(pdus)
    return [stream[: rng.randrange(len(stream))]]


def _reorder(rng: random.Random, pdus: list[bytes]) -> list[bytes]:
    shuffled = list(pdus)
    if rng.random() < 0.5:
        del shuffled[rng.randrange(1, len(shuffled))]
    else:
        index = rng.randrange(1, len(shuffled))
        shuffled.insert(rng.randrange(1, len(shuffled)), shuffled[index])
    return shuffled


def _insert_garbage(rng: random.Random, pdus: list[bytes]) -> list[bytes]:
    garbage = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))
    index = rng.randrange(1, len(pdus) + 1)
    return [*pdus[:index], garbage, *pdus[index:]]


def _split(rng: random.Random, stream: bytes) -> list[bytes]:
    """The stream in pieces of a few bytes to a few kB (at most 2,000 pieces)."""
    pieces, offset = [], 0
    while offset < len(stream) and len(pieces) < 2000:
        size = rng.choice((1, 2, 3, 7, 100, 4096))
        pieces.append(stream[offset : offset + size])
        offset += size
    return [*pieces, stream[offset:]]


MUTATORS: dict[str, Callable[[random.Random, list[bytes]], list[bytes]]] = {
    "flip bytes": _flip_bytes,
    "pdu length": _pdu_length,
    "pdv length": _pdv_length,
    "control header": _control_header,
    "context": _context,
    "pdu type": _pdu_type,
    "truncate": _truncate,
    "reorder": _reorder,
    "garbage": _insert_garbage,
    "none": lambda rng, pdus: pdus,
}
MUTATIONS = (*MUTATORS, "command field")


@dataclass
class Outcome:
    """What became of one case."""

    acknowledged: set[str]
    """SOP Instance UIDs the receiver answered with 0x0000."""
    ended: bool
    """Whether the receiver ended the connection within ``HELD_AT_MOST`` seconds."""


HELD_AT_MOST = 30.0
"""A receiver that holds a fuzz connection longer ignores its own time limits."""


def run_case(address: tuple[str, int], case: Case) -> Outcome:
    """Send the case and read until the receiver ends the connection (released, aborted or
    cut off by its limits)."""
    outcome = Outcome(set(), ended=True)
    try:
        sock = socket.create_connection(address, timeout=HELD_AT_MOST)
    except OSError:
        return outcome
    with sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        peer = RawAssociation(sock)
        started = time.monotonic()
        _send_all(sock, case.request)
        sender = threading.Thread(target=_send_all, args=(sock, case.rest), daemon=True)
        while (pdu := peer.read_pdu()) is not None:
            if pdu[0] == 0x02 and not sender.is_alive():  # accepted: the rest
                sender.start()
            elif pdu[0] == 0x04:
                response = _command_of(pdu[1])
                if response is not None and response.get("Status") == 0x0000:
                    uid = str(response.get("AffectedSOPInstanceUID", ""))
                    if uid.startswith(UID_ROOT):
                        outcome.acknowledged.add(uid)
        outcome.ended = time.monotonic() - started < HELD_AT_MOST
        if not outcome.ended:  # where the receiver's threads are stuck, for the report
            print(f"case {case.number} ({case.mutation}) held; threads:", file=sys.stderr)
            faulthandler.dump_traceback(all_threads=True)
        if sender.ident is not None:
            sender.join(timeout=5)
    return outcome


def _send_all(sock: socket.socket, pieces: list[bytes]) -> None:
    try:
        for piece in pieces:
            sock.sendall(piece)
    except OSError:
        pass  # the receiver ended the connection: fine


def _command_of(body: bytes) -> Any:
    from io import BytesIO

    from pynetdicom.dsutils import decode

    try:
        # One whole command set in one PDV, as the receiver sends its responses.
        length, _, control = struct.unpack_from(">LBB", body)
        if control & 0x03 != 0x03:
            return None
        return decode(BytesIO(body[6 : 4 + length]), True, True)
    except Exception:  # noqa: BLE001 - not a response the fuzzer can read: not an acknowledgement
        return None


@dataclass
class BatchReport:
    """What a batch did."""

    cases: int = 0
    acknowledged: set[str] = field(default_factory=set)
    held_too_long: list[int] = field(default_factory=list)
    """Cases whose connection the receiver did not end in time."""
    mutations: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def run_batch(
    address: tuple[str, int], maker: CaseMaker, first: int, count: int, *, parallel: int = 16
) -> BatchReport:
    """Cases ``first`` .. ``first + count - 1``, ``parallel`` at a time."""
    report = BatchReport()
    started = time.monotonic()
    cases = [maker.make(number) for number in range(first, first + count)]
    with ThreadPoolExecutor(parallel) as pool:
        outcomes = pool.map(lambda case: run_case(address, case), cases)
        for case, outcome in zip(cases, outcomes, strict=True):
            report.cases += 1
            report.acknowledged |= outcome.acknowledged
            if not outcome.ended:
                report.held_too_long.append(case.number)
            report.mutations[case.mutation] = report.mutations.get(case.mutation, 0) + 1
    report.seconds = time.monotonic() - started
    return report


def receiver_health(
    address: tuple[str, int], incoming: Path, deadline: float
) -> tuple[bool, list[Path]]:
    """Whether C-ECHO is answered; the temp files left (after waiting up to ``deadline``
    seconds for the last cases' to go)."""
    peer = RawAssociation.open(address, CONTEXTS, calling_ae="FUZZCHECK")
    peer.send(message(3, _echo_command(), None))
    response = peer.response()
    peer.release()
    alive = response is not None and int(response.Status) == 0x0000
    ends = time.monotonic() + deadline
    while (left := sorted(incoming.rglob("*.dcm"))) and time.monotonic() < ends:
        time.sleep(0.1)
    return alive, left


def unexplained(maker: CaseMaker, stored: dict[str, bytes], acknowledged: set[str]) -> list[str]:
    """Fuzz instances in the index (UID: stored dataset) that neither were acknowledged nor
    hold exactly the dataset their case sent intact (a peer may break the association after
    a whole C-STORE arrived, before its response: then the instance is kept, as sent)."""
    return sorted(
        uid
        for uid, dataset in stored.items()
        if uid.startswith(UID_ROOT)
        and uid not in acknowledged
        and dataset != maker.dataset.replace(PLACEHOLDER.encode(), uid.encode())
    )


def rss_bytes() -> int:
    """Resident memory of this process."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


FUZZ_LIMITS = {
    "association_request_timeout": 0.5,
    "idle_timeout": 0.5,
    "pdu_timeout": 1.0,
    "message_timeout": 2.0,
    "release_timeout": 0.5,
    "workers": 1,
    "port": 0,
}
"""Receiver settings of a fuzz run: small limits, so a stalled case ends quickly."""


def main(argv: list[str] | None = None) -> int:
    """Start a receiver in a fresh OPENJIP_HOME and fuzz it; exit 1 on a violation."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--cases", type=int, default=5000)
    parser.add_argument("--first", type=int, default=0, help="number of the first case")
    parser.add_argument("--batch", type=int, default=200, help="cases between checks")
    parser.add_argument("--parallel", type=int, default=16)
    parser.add_argument("--pdata-reader", choices=("openjip", "pynetdicom"), default="openjip")
    args = parser.parse_args(argv)

    import logging
    import os
    import warnings

    logging.basicConfig(level=logging.CRITICAL)
    warnings.simplefilter("ignore")  # pydicom's warnings on the fuzzed values
    with tempfile.TemporaryDirectory(prefix="openjip-fuzz-") as home:
        os.environ["OPENJIP_HOME"] = home
        from openjip.config import Settings
        from openjip.index import Query
        from openjip.index.sqlite import SQLiteIndex
        from openjip.receiver import ReceiverService
        from openjip.receiver.incoming import incoming_root
        from openjip.storage.local import LocalObjectStore

        base = Settings()
        limits = {**FUZZ_LIMITS, "pdata_reader": args.pdata_reader}
        settings = base.model_copy(update={"receiver": base.receiver.model_copy(update=limits)})
        service = ReceiverService(settings)
        service.start()

        def stored() -> dict[str, bytes]:
            index, store = SQLiteIndex(settings.index_path), LocalObjectStore(settings.storage_path)
            try:
                return {
                    record.SOPInstanceUID: dataset_bytes(store.get(record.object_key))
                    for record in index.find_instances(Query())
                }
            finally:
                index.close()

        maker, acknowledged, first_rss = CaseMaker(args.seed), set[str](), 0
        print(f"protocol fuzz: seed {args.seed}, {args.cases} cases, {args.pdata_reader} reader")
        try:
            for first in range(args.first, args.first + args.cases, args.batch):
                count = min(args.batch, args.first + args.cases - first)
                report = run_batch(service.address, maker, first, count, parallel=args.parallel)
                acknowledged |= report.acknowledged
                alive, left = receiver_health(service.address, incoming_root(settings), 10)
                wrong = unexplained(maker, stored(), acknowledged)
                gc.collect()
                rss = rss_bytes()
                first_rss = first_rss or rss
                print(
                    f"cases {first}-{first + count - 1}: {report.seconds:.1f} s, "
                    f"{len(report.acknowledged)} stored, alive={alive}, temp files={len(left)}, "
                    f"indexed unexplained={len(wrong)}, "
                    f"held too long={len(report.held_too_long)}, "
                    f"rss +{(rss - first_rss) / 2**20:.1f} MiB, threads {threading.active_count()}"
                )
                if not alive or left or wrong or report.held_too_long:
                    print("VIOLATION", wrong[:5], left[:5])
                    print("held too long:", report.held_too_long[:5])
                    return 1
        finally:
            service.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
