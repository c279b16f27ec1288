"""Seeded mutations of real DICOM files and the oracle every parsed input must pass.

The seeds are pydicom's test files (and pydicom-data's); each case is one seed mutated by a
few of the mutators below, chosen by a seeded ``random.Random``, so a failing case number
reproduces exactly. The oracle (:func:`check`) is what issue 16 asks of the header readers:
for any bytes, ``read_instance`` returns a header that is strict JSON or raises
:class:`~openjip.dicom.UnreadableInstance` with a reason; nothing else escapes.
"""

from __future__ import annotations

import json
import random
import struct
import sys
from collections.abc import Callable
from functools import cache
from pathlib import Path

from openjip.dicom import UnreadableInstance, read_instance

sys.path.insert(0, str(Path(__file__).parents[1] / "dicom"))

from dicom_corpus import corpus_files

MAX_SEED_BYTES = 64 * 1024
"""Seeds larger than this are left out: the mutants of small files cover the same paths."""

_LONG_VRS = {
    b"OB",
    b"OD",
    b"OF",
    b"OL",
    b"OV",
    b"OW",
    b"SQ",
    b"SV",
    b"UC",
    b"UN",
    b"UR",
    b"UT",
    b"UV",
}
_SHORT_VRS = {b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FD", b"FL", b"IS", b"LO", b"LT"}
_VRS = sorted(
    _LONG_VRS | _SHORT_VRS | {b"PN", b"SH", b"SL", b"SS", b"ST", b"TM", b"UI", b"UL", b"US"}
)
_SYNTAXES = [
    b"1.2.840.10008.1.2\0",
    b"1.2.840.10008.1.2.1\0",
    b"1.2.840.10008.1.2.2\0",
    b"1.2.840.10008.1.2.1.99",
    b"1.2.840.10008.1.2.4.50",
    b"1.2.3.4.5.6",
    b"\xff\xfe garbage",
    b"",
]
_LENGTHS = [0, 1, 2, 3, 0xFFFF, 0xFFFE, 0xFFFFFFFF, 0xFFFFFFFE, 0x7FFFFFFF, 0x80000000]
_NESTED_ITEM = b"\xfe\xff\x00\xe0\xff\xff\xff\xff"
_SEQUENCE_END = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
_ITEM_END = b"\xfe\xff\x0d\xe0\x00\x00\x00\x00"


@cache
def seeds() -> tuple[bytes, ...]:
    """Every readable-sized Part-10 test file of pydicom and pydicom-data, sorted by name."""
    chosen = []
    for path in corpus_files("*.dcm"):
        if path.stat().st_size <= MAX_SEED_BYTES:
            data = path.read_bytes()
            if data[128:132] == b"DICM":
                chosen.append(data)
    return tuple(chosen)


def _element_offsets(data: bytes) -> list[int]:
    """Where explicit-VR element headers (a tag, then two VR letters) appear to start."""
    return [i for i in range(132, len(data) - 8, 2) if data[i + 4 : i + 6] in _VRS]


def _flip_bytes(rng: random.Random, data: bytearray) -> None:
    for _ in range(rng.randint(1, 8)):
        data[rng.randrange(len(data))] = rng.randrange(256)


def _truncate(rng: random.Random, data: bytearray) -> None:
    del data[rng.randrange(132, len(data)) :]


def _bad_length(rng: random.Random, data: bytearray) -> None:
    offsets = _element_offsets(bytes(data))
    if not offsets:
        return
    at = rng.choice(offsets)
    long = bytes(data[at + 4 : at + 6]) in _LONG_VRS
    value = rng.choice(_LENGTHS)
    if long:
        data[at + 8 : at + 12] = struct.pack("<L", value & 0xFFFFFFFF)
    else:
        data[at + 6 : at + 8] = struct.pack("<H", value & 0xFFFF)


def _bad_vr(rng: random.Random, data: bytearray) -> None:
    offsets = _element_offsets(bytes(data))
    if offsets:
        at = rng.choice(offsets)
        data[at + 4 : at + 6] = rng.choice([*_VRS, b"\0\0", b"zz", b"\xff\xff"])


def _transfer_syntax(rng: random.Random, data: bytearray) -> None:
    at = bytes(data).find(b"\x02\x00\x10\x00UI")
    if at < 0 or at + 8 > len(data):
        return
    length = struct.unpack_from("<H", data, at + 6)[0]
    syntax = rng.choice(_SYNTAXES)
    syntax += b"\0" * (len(syntax) % 2)
    data[at + 6 : at + 8 + length] = struct.pack("<H", len(syntax)) + syntax
    # The group length (0002,0000) no longer fits; readers must not rely on it.


def _non_ascii_text(rng: random.Random, data: bytearray) -> None:
    offsets = [
        at
        for at in _element_offsets(bytes(data))
        if bytes(data[at + 4 : at + 6]) in (b"UI", b"DA", b"TM", b"CS", b"DS", b"IS", b"LO", b"PN")
    ]
    if offsets:
        at = rng.choice(offsets)
        length = struct.unpack_from("<H", data, at + 6)[0]
        for i in range(at + 8, min(at + 8 + length, len(data))):
            if rng.random() < 0.3:
                data[i] = rng.choice([0xE9, 0xFF, 0x80, 0x00, 0x5C, ord("a"), ord("_")])


def _splice(rng: random.Random, data: bytearray) -> None:
    start = rng.randrange(132, len(data))
    chunk = data[start : start + rng.randint(1, 256)]
    where = rng.randrange(132, len(data))
    data[where:where] = chunk


def _deep_sequence(rng: random.Random, data: bytearray) -> None:
    """Sequences of undefined length nested hundreds deep, as a hostile peer sent them."""
    depth = rng.choice([20, 70, 300, 1000])
    sequence = b"\x08\x00\x15\x11SQ\0\0\xff\xff\xff\xff"  # ReferencedSeriesSequence
    nested = (sequence + _NESTED_ITEM) * depth + (_ITEM_END + _SEQUENCE_END) * depth
    offsets = [at for at in _element_offsets(bytes(data)) if data[at + 1] == 0 and data[at] >= 8]
    where = rng.choice(offsets) if offsets else len(data)
    data[where:where] = nested


MUTATORS: list[Callable[[random.Random, bytearray], None]] = [
    _flip_bytes,
    _truncate,
    _bad_length,
    _bad_vr,
    _transfer_syntax,
    _non_ascii_text,
    _splice,
    _deep_sequence,
]


def mutant(case: int) -> bytes:
    """The bytes of case number ``case``: one seed, one to three mutations."""
    rng = random.Random(case)
    data = bytearray(rng.choice(seeds()))
    for mutate in rng.sample(MUTATORS, rng.randint(1, 3)):
        if len(data) > 132:
            mutate(rng, data)
    return bytes(data)


def check(data: bytes) -> None:
    """The oracle: a strict-JSON header or :class:`UnreadableInstance` with a reason."""
    try:
        parsed = read_instance(data)
    except UnreadableInstance as refusal:
        assert str(refusal), "a refusal must say why"
        return
    json.dumps(parsed.header, allow_nan=False)
    assert isinstance(parsed.transfer_syntax, str)
