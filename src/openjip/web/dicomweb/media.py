"""Media types of pixel data (PS3.18 8.7.3) and Accept negotiation for frames and bulk data.

A frame can be sent as stored (its transfer syntax's media type, or ``application/octet-stream``
labelled with the stored transfer syntax when the client asks for ``transfer-syntax=*``), or
decoded to uncompressed little endian (``application/octet-stream``, Explicit VR Little Endian).
:func:`choose_frame_encoding` picks the first of the client's media ranges that one of these
satisfies and raises 406 naming what the server could send otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

from openjip.web.dicomweb.errors import DicomWebError
from openjip.web.dicomweb.multipart import parse_media_type

OCTET_STREAM = "application/octet-stream"
EXPLICIT_LITTLE = "1.2.840.10008.1.2.1"
UNCOMPRESSED = frozenset({"1.2.840.10008.1.2", EXPLICIT_LITTLE, "1.2.840.10008.1.2.2"})
"""Transfer syntaxes whose pixel data is native; deflate only compresses the dataset around it."""
DEFLATED = "1.2.840.10008.1.2.1.99"

COMPRESSED_MEDIA_TYPES = {
    "1.2.840.10008.1.2.4.50": "image/jpeg",
    "1.2.840.10008.1.2.4.51": "image/jpeg",
    "1.2.840.10008.1.2.4.57": "image/jpeg",
    "1.2.840.10008.1.2.4.70": "image/jpeg",
    "1.2.840.10008.1.2.4.80": "image/jls",
    "1.2.840.10008.1.2.4.81": "image/jls",
    "1.2.840.10008.1.2.4.90": "image/jp2",
    "1.2.840.10008.1.2.4.91": "image/jp2",
    "1.2.840.10008.1.2.4.92": "image/jpx",
    "1.2.840.10008.1.2.4.93": "image/jpx",
    "1.2.840.10008.1.2.4.201": "image/jphc",
    "1.2.840.10008.1.2.4.202": "image/jphc",
    "1.2.840.10008.1.2.4.203": "image/jphc",
    "1.2.840.10008.1.2.5": "image/dicom-rle",
}
"""Transfer syntax of encapsulated pixel data → media type of one frame (PS3.18 Table 8.7.3-5)."""

DEFAULT_TRANSFER_SYNTAX = {
    OCTET_STREAM: EXPLICIT_LITTLE,
    "image/jpeg": "1.2.840.10008.1.2.4.70",
    "image/jls": "1.2.840.10008.1.2.4.80",
    "image/jp2": "1.2.840.10008.1.2.4.90",
    "image/jpx": "1.2.840.10008.1.2.4.92",
    "image/jphc": "1.2.840.10008.1.2.4.201",
    "image/dicom-rle": "1.2.840.10008.1.2.5",
}
"""Transfer syntax a media range without ``transfer-syntax`` means (PS3.18 Table 8.7.3-5)."""


@dataclass(frozen=True)
class FrameEncoding:
    """How frames go out: ``decode`` to native little endian, or as stored."""

    media_type: str
    transfer_syntax: str
    decode: bool

    @property
    def content_type(self) -> str:
        """The Content-Type of one part."""
        return f"{self.media_type}; transfer-syntax={self.transfer_syntax}"


def is_native(transfer_syntax: str) -> bool:
    """Whether pixel data in ``transfer_syntax`` is not encapsulated."""
    return transfer_syntax in UNCOMPRESSED or transfer_syntax == DEFLATED


def _offers(stored: str) -> list[tuple[str, str, bool]]:
    """(media type, transfer syntax, decode) the server can send for frames stored in ``stored``."""
    decoded = (OCTET_STREAM, EXPLICIT_LITTLE, stored not in (EXPLICIT_LITTLE, "1.2.840.10008.1.2"))
    if is_native(stored):
        return [decoded]
    return [(COMPRESSED_MEDIA_TYPES.get(stored, OCTET_STREAM), stored, False), decoded]


def choose_frame_encoding(accept: str, stored: str) -> FrameEncoding:
    """The encoding of frames stored in ``stored`` that the Accept header ``accept`` allows.

    Each media range is ``multipart/related; type=...; transfer-syntax=...`` (or ``*/*``);
    the first one that can be served wins. 406 with the reason otherwise.
    """
    offers = _offers(stored)
    as_stored = offers[0]
    for media_range in (accept or "*/*").split(","):
        media_type, params = parse_media_type(media_range.strip() or "*/*")
        if media_type in ("*/*", "multipart/*"):
            return FrameEncoding(*as_stored)
        if media_type != "multipart/related":
            continue
        part_type = params.get("type", OCTET_STREAM).lower()
        wanted = params.get("transfer-syntax", "")
        if wanted == "*":
            # The server's choice: the bytes as stored, labelled with the type asked for when
            # that is octet-stream (what other archives send and cornerstone expects).
            if part_type in (OCTET_STREAM, "*/*"):
                return FrameEncoding(OCTET_STREAM, *as_stored[1:])
            if part_type == as_stored[0]:
                return FrameEncoding(*as_stored)
            continue
        wanted = wanted or DEFAULT_TRANSFER_SYNTAX.get(part_type, "")
        for media, syntax, decode in offers:
            if syntax == wanted and part_type in (media, "*/*", OCTET_STREAM):
                return FrameEncoding(part_type if part_type != "*/*" else media, syntax, decode)
    served = ", ".join(
        f'multipart/related; type="{media}"; transfer-syntax={ts}' for media, ts, _ in offers
    )
    raise DicomWebError(
        406,
        f"frames stored as {stored} can be sent as {served} (or transfer-syntax=*); "
        f"Accept {accept!r} allows none of these",
    )
