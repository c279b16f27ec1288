"""``multipart/related`` bodies (RFC 2387): writing them part by part as a stream (WADO-RS),
whole stored objects in large blocks, reading them incrementally with python-multipart
(STOW-RS)."""

from __future__ import annotations

import io
import secrets
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from email.message import Message
from typing import BinaryIO, cast

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser

from openjip.web.dicomweb.errors import DicomWebError


def parse_media_type(value: str) -> tuple[str, dict[str, str]]:
    """``("multipart/related", {"type": "application/dicom", ...})`` of a header value."""
    message = Message()
    message["content-type"] = value
    params = {str(key).lower(): str(item) for key, item in (message.get_params() or [])[1:]}
    return message.get_content_type(), params


def new_boundary() -> str:
    """A boundary that cannot occur in DICOM data by chance."""
    return "openjip-" + secrets.token_hex(16)


def write_multipart(parts: Iterable[tuple[str, Iterable[bytes]]], boundary: str) -> Iterator[bytes]:
    """The body of a multipart/related message of ``(content type, chunks)`` parts."""
    for content_type, chunks in parts:
        yield f"--{boundary}\r\nContent-Type: {content_type}\r\n\r\n".encode()
        yield from chunks
        yield b"\r\n"
    yield f"--{boundary}--\r\n".encode()


def write_multipart_objects(
    parts: Iterable[tuple[str, Callable[[], AbstractContextManager[BinaryIO]]]],
    boundary: str,
    block_bytes: int,
) -> Iterator[memoryview]:
    """The body of a multipart/related message of ``(content type, open the object)`` parts,
    in blocks of ``block_bytes`` (the last shorter). Objects are read straight into the block,
    several small ones into one: a server iterating this in its thread pool hands over one
    block, not each object's header, chunks and trailer."""
    block = _Block(block_bytes)
    for content_type, open_object in parts:
        yield from block.add(f"--{boundary}\r\nContent-Type: {content_type}\r\n\r\n".encode())
        with open_object() as source:
            yield from block.fill_from(source)
        yield from block.add(b"\r\n")
    yield from block.add(f"--{boundary}--\r\n".encode())
    yield from block.flush()


class _Block:
    """A buffer of ``size`` bytes handed out (as a view, then replaced) each time it is full."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._view = memoryview(bytearray(size))
        self._filled = 0

    def add(self, data: bytes) -> Iterator[memoryview]:
        """Copy ``data`` in, handing out the full blocks."""
        while data:
            taken = min(len(data), self._size - self._filled)
            self._view[self._filled : self._filled + taken] = data[:taken]
            self._filled += taken
            data = data[taken:]
            yield from self._full()

    def fill_from(self, source: BinaryIO) -> Iterator[memoryview]:
        """Read ``source`` to its end into the buffer, handing out the full blocks."""
        reader = cast(io.BufferedIOBase, source)  # every store's stream is a buffered file
        while count := reader.readinto(self._view[self._filled :]):
            self._filled += count
            yield from self._full()

    def flush(self) -> Iterator[memoryview]:
        """Hand out what the buffer holds."""
        if self._filled:
            yield self._view[: self._filled]
            self._view, self._filled = memoryview(bytearray(self._size)), 0

    def _full(self) -> Iterator[memoryview]:
        if self._filled == self._size:
            yield from self.flush()


@dataclass
class Part:
    """One part of a received multipart body."""

    headers: dict[str, str] = field(default_factory=dict)
    data: bytearray = field(default_factory=bytearray)

    @property
    def content_type(self) -> str:
        """Media type of the part, without parameters (``""`` when not given)."""
        value = self.headers.get("content-type", "")
        return parse_media_type(value)[0] if value else ""


class MultipartReader:
    """Collects the parts of a multipart body fed in chunks; at most ``max_bytes`` in all."""

    def __init__(self, boundary: str, max_bytes: int) -> None:
        self.parts: list[Part] = []
        self._max_bytes = max_bytes
        self._received = 0
        self._field = b""
        self._value = b""
        self._parser = MultipartParser(
            boundary,
            callbacks={
                "on_part_begin": self._begin,
                "on_part_data": self._data,
                "on_header_field": self._header_field,
                "on_header_value": self._header_value,
                "on_header_end": self._header_end,
            },
            max_header_count=32,
        )

    def _begin(self) -> None:
        self.parts.append(Part())

    def _data(self, data: bytes, start: int, end: int) -> None:
        self.parts[-1].data.extend(data[start:end])

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        self.parts[-1].headers[self._field.decode("latin-1").strip().lower()] = self._value.decode(
            "latin-1"
        ).strip()
        self._field = self._value = b""

    def feed(self, chunk: bytes) -> None:
        """Parse the next chunk of the body; 413 past the size limit, 400 if malformed."""
        self._received += len(chunk)
        if self._received > self._max_bytes:
            raise DicomWebError(413, f"request body exceeds {self._max_bytes} bytes")
        try:
            self._parser.write(chunk)
        except MultipartParseError as error:
            raise DicomWebError(400, f"malformed multipart body: {error}") from error

    def finish(self) -> list[Part]:
        """The parts read; 400 when the body held none."""
        try:
            self._parser.finalize()
        except MultipartParseError as error:
            raise DicomWebError(400, f"malformed multipart body: {error}") from error
        if not self.parts:
            raise DicomWebError(400, "the multipart body holds no part")
        return self.parts
