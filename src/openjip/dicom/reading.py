"""Reading the transfer syntax and DICOM JSON header of a Part-10 instance, whatever its bytes.

``read_instance`` takes the fast path of :mod:`openjip.dicom.fastheader` and falls back to
pydicom for encodings the fast path leaves alone; both give the same DICOM JSON header (one
normalisation, :mod:`openjip.dicom.header`). Bytes from a network peer can be anything, so
every way either reader can fail on them ends in :class:`UnreadableInstance` with a reason:
the receiver and STOW-RS answer it per instance instead of dropping the association or the
request.
"""

from __future__ import annotations

import contextlib
import io
import mmap
import os
from pathlib import Path

from pydicom import dcmread
from pydicom.errors import InvalidDicomError

from openjip.dicom.fastheader import (
    BeyondBuffer,
    FastPathUnsupported,
    MalformedInstance,
    ParsedInstance,
    check_transfer_syntax,
    parse_part10,
)
from openjip.dicom.header import DEFAULT_MAX_SEQUENCE_DEPTH, NestingTooDeep, dicom_json_header

_HEAD_BYTES = 64 * 1024
"""How much of a file ``read_instance`` reads first, hoping the whole header is in it."""


class UnreadableInstance(ValueError):
    """The bytes are not a DICOM Part-10 instance a header can be read from."""


def read_instance(
    source: Path | bytes, *, max_depth: int = DEFAULT_MAX_SEQUENCE_DEPTH
) -> ParsedInstance:
    """Transfer syntax and DICOM JSON header (bulk data left out) of a Part-10 instance.

    On the fast path the whole instance is checked for truncation; pixel data is never
    decoded. Raises :class:`UnreadableInstance` with a reason for data that cannot be an
    instance, sequences nested deeper than ``max_depth`` included, and nothing else for any
    bytes (``OSError`` only when the file itself cannot be read).
    """
    try:
        return _fast(source, max_depth)
    except (MalformedInstance, NestingTooDeep) as exc:
        raise UnreadableInstance(str(exc)) from exc
    except FastPathUnsupported:
        return _with_pydicom(io.BytesIO(source) if isinstance(source, bytes) else source, max_depth)


def _fast(source: Path | bytes, max_depth: int) -> ParsedInstance:
    if isinstance(source, bytes):
        return parse_part10(source, max_depth=max_depth)
    with source.open("rb") as file:
        size = os.fstat(file.fileno()).st_size
        if size == 0:
            raise MalformedInstance("empty file")
        # The header is nearly always in the first few kB, and the pixel data after it is
        # skipped: reading just the start is cheaper than mapping the whole file.
        with contextlib.suppress(BeyondBuffer):
            return parse_part10(file.read(_HEAD_BYTES), size, max_depth=max_depth)
        with mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            view = memoryview(mapped)
            try:
                return parse_part10(view, max_depth=max_depth)
            finally:
                view.release()


def _with_pydicom(source: Path | io.BytesIO, max_depth: int) -> ParsedInstance:
    """The header as pydicom reads it, for what the fast path leaves alone."""
    try:
        ds = dcmread(source, stop_before_pixels=True)
        transfer_syntax = str(ds.file_meta.get("TransferSyntaxUID", ""))
        check_transfer_syntax(transfer_syntax)
        header = dicom_json_header(ds, max_depth)
        source_ae = str(ds.file_meta.get("SourceApplicationEntityTitle", "")).strip()
    except (MalformedInstance, NestingTooDeep) as exc:
        raise UnreadableInstance(str(exc)) from exc
    except InvalidDicomError as exc:
        raise UnreadableInstance(f"not a DICOM Part-10 file: {exc}") from exc
    except RecursionError as exc:
        raise UnreadableInstance("sequences nested too deep for pydicom to read") from exc
    except Exception as exc:
        # struct.error, NotImplementedError, BytesLengthException, KeyError, ... were seen.
        raise UnreadableInstance(f"cannot parse dataset: {type(exc).__name__}: {exc}") from exc
    return ParsedInstance(transfer_syntax, header, source_ae)
