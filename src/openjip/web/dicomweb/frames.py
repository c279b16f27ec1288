"""WADO-RS frames and bulk data (PS3.18 10.4.1.1.4, 8.7.3): pixel data frame by frame as
``multipart/related``, as stored or decoded as the Accept header asks; ``.../bulkdata/7FE00010``
is every frame of an instance, the BulkDataURI its metadata gives for PixelData."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from openjip.index import InstanceRecord
from openjip.web.dicomweb.errors import DicomWebError
from openjip.web.dicomweb.lookup import Reader, matching_instances
from openjip.web.dicomweb.media import choose_frame_encoding
from openjip.web.dicomweb.multipart import new_boundary, write_multipart
from openjip.web.dicomweb.pixels import PIXEL_DATA, StoredPixels

router = APIRouter()
INSTANCE = "/studies/{study}/series/{series}/instances/{instance}"


def parse_frame_numbers(frames: str) -> list[int]:
    """``[1, 3]`` of ``"1,3"``; 400 for anything but a list of whole numbers >= 1."""
    numbers = [part.strip() for part in frames.split(",")]
    if not all(number.isdigit() and int(number) >= 1 for number in numbers):
        raise DicomWebError(400, f"frame list {frames!r} is not of numbers >= 1 separated by ','")
    return [int(number) for number in numbers]


def read_pixels(request: Request, record: InstanceRecord) -> StoredPixels:
    """The pixel data of ``record`` read from the object store."""
    data = request.app.state.backends.store.get(record.object_key)
    return StoredPixels(data, f"instance {record.SOPInstanceUID}")


def _frames_response(request: Request, pixels: StoredPixels, numbers: list[int]) -> Response:
    encoding = choose_frame_encoding(request.headers.get("accept", "*/*"), pixels.transfer_syntax)
    frames = [pixels.frame(number, encoding) for number in numbers]
    boundary = new_boundary()
    body = b"".join(
        write_multipart(((encoding.content_type, [frame]) for frame in frames), boundary)
    )
    return Response(
        body,
        media_type=(
            f'multipart/related; type="{encoding.media_type}"; '
            f"transfer-syntax={encoding.transfer_syntax}; boundary={boundary}"
        ),
    )


@router.get(INSTANCE + "/frames/{frames}", summary="WADO-RS: frames of an instance")
def retrieve_frames(
    study: str, series: str, instance: str, frames: str, request: Request, caller: Reader
) -> Response:
    """The listed frames (1-based, ``1,2,3``), one part each."""
    numbers = parse_frame_numbers(frames)
    (record,) = matching_instances(request, caller, study, series, instance)
    return _frames_response(request, read_pixels(request, record), numbers)


@router.get(INSTANCE + "/bulkdata/{tag}", summary="WADO-RS: bulk data of an instance")
def retrieve_bulkdata(
    study: str, series: str, instance: str, tag: str, request: Request, caller: Reader
) -> Response:
    """Pixel data (``7FE00010``) as every frame of the instance, one part each."""
    if tag.upper() != f"{PIXEL_DATA:08X}":
        raise DicomWebError(404, f"bulk data is served for PixelData (7FE00010), not {tag!r}")
    (record,) = matching_instances(request, caller, study, series, instance)
    pixels = read_pixels(request, record)
    return _frames_response(request, pixels, list(range(1, pixels.frame_count + 1)))
