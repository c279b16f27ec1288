"""Whole objects written as a multipart body in blocks: the parts read back byte for byte,
whatever the block size, and every block but the last is full."""

from __future__ import annotations

import io

import pytest

from openjip.web.dicomweb.multipart import MultipartReader, write_multipart_objects

OBJECTS = [
    bytes((i * 7 + n) % 256 for i in range(size)) for n, size in enumerate((0, 1, 5000, 70_001, 3))
]


@pytest.mark.parametrize("block_bytes", [1, 7, 4096, 1 << 20])
def test_objects_come_back_whole_in_full_blocks(block_bytes: int) -> None:
    parts = [
        (f"application/dicom; n={n}", lambda data=data: io.BytesIO(data))
        for n, data in enumerate(OBJECTS)
    ]
    blocks = [bytes(block) for block in write_multipart_objects(parts, "b0undary", block_bytes)]
    assert all(len(block) == block_bytes for block in blocks[:-1])
    assert 0 < len(blocks[-1]) <= block_bytes
    reader = MultipartReader("b0undary", 1 << 30)
    reader.feed(b"".join(blocks))
    read = reader.finish()
    assert [bytes(part.data) for part in read] == OBJECTS
    assert [part.headers["content-type"] for part in read] == [ctype for ctype, _ in parts]


def test_an_object_that_cannot_be_opened_stops_the_body() -> None:
    def missing() -> io.BytesIO:
        raise KeyError("gone")

    body = write_multipart_objects([("application/dicom", missing)], "b", 1024)
    with pytest.raises(KeyError):
        list(body)
