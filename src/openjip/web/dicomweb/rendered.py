"""WADO-RS rendered and thumbnail resources (PS3.18 10.4.1.1.3, 10.4.1.1.5): one frame as
JPEG or PNG, windowed from the header (or ``window=center,width,linear``), fitted into
``viewport=width,height``. A series' thumbnail is its middle image, a study's that of its first
image series."""

from __future__ import annotations

import io

from fastapi import APIRouter, Request, Response

from openjip.index import InstanceRecord
from openjip.web.dicomweb.errors import DicomWebError
from openjip.web.dicomweb.frames import INSTANCE, parse_frame_numbers, read_pixels
from openjip.web.dicomweb.lookup import Reader, matching_instances
from openjip.web.dicomweb.multipart import parse_media_type
from openjip.web.dicomweb.pixels import Window

router = APIRouter()
IMAGE_FORMATS = {"image/jpeg": "JPEG", "image/png": "PNG"}
THUMBNAIL_SIZE = (128, 128)
NON_IMAGE_MODALITIES = frozenset({"SEG", "SR", "PR", "KO", "RTSTRUCT", "RTPLAN", "DOC"})


def _image_type(request: Request) -> str:
    accept = request.headers.get("accept", "*/*")
    for media_range in accept.split(","):
        media_type = parse_media_type(media_range.strip() or "*/*")[0]
        if media_type in IMAGE_FORMATS:
            return media_type
        if media_type in ("*/*", "image/*"):
            return "image/jpeg"
    raise DicomWebError(
        406, f"rendered images are image/jpeg or image/png; Accept {accept!r} allows neither"
    )


def _numbers(request: Request, name: str, count: int) -> list[float]:
    value = request.query_params.get(name, "")
    parts = value.split(",")[:count] if value else []
    try:
        numbers = [float(part) for part in parts]
    except ValueError:
        numbers = []
    if value and len(numbers) != count:
        raise DicomWebError(400, f"{name}={value!r} must hold {count} numbers separated by ','")
    return numbers


def _render(
    request: Request, record: InstanceRecord, frame: int | None, thumbnail: bool
) -> Response:
    media_type = _image_type(request)
    viewport = _numbers(request, "viewport", 2)
    window = _numbers(request, "window", 2)
    pixels = read_pixels(request, record)
    number = frame if frame is not None else (pixels.frame_count + 1) // 2 if thumbnail else 1
    image = pixels.render(
        number,
        Window(*window) if window else None,
        (int(viewport[0]), int(viewport[1])) if viewport else THUMBNAIL_SIZE if thumbnail else None,
    )
    quality = request.query_params.get("quality", "")
    output = io.BytesIO()
    image.save(output, IMAGE_FORMATS[media_type], quality=int(quality) if quality.isdigit() else 90)
    return Response(output.getvalue(), media_type=media_type)


def _middle_image(records: list[InstanceRecord]) -> InstanceRecord:
    records = sorted(
        records, key=lambda record: (record.InstanceNumber or 0, record.SOPInstanceUID)
    )
    return records[len(records) // 2]


def _study_image(records: list[InstanceRecord]) -> InstanceRecord:
    """The middle image of the first (lowest-numbered) image series among ``records``."""
    images = [record for record in records if record.Modality not in NON_IMAGE_MODALITIES]
    if not images:
        raise DicomWebError(404, f"study {records[0].StudyInstanceUID} holds no image series")
    first = min(images, key=lambda record: (record.SeriesNumber or 0, record.SeriesInstanceUID))
    return _middle_image(
        [record for record in images if record.SeriesInstanceUID == first.SeriesInstanceUID]
    )


@router.get(INSTANCE + "/rendered", summary="WADO-RS: an instance rendered")
def rendered_instance(
    study: str, series: str, instance: str, request: Request, caller: Reader
) -> Response:
    """The first frame of the instance as JPEG or PNG."""
    (record,) = matching_instances(request, caller, study, series, instance)
    return _render(request, record, None, thumbnail=False)


def _one_frame(frames: str) -> int:
    numbers = parse_frame_numbers(frames)
    if len(numbers) != 1:
        raise DicomWebError(400, "rendered frames and thumbnails are served one frame at a time")
    return numbers[0]


@router.get(INSTANCE + "/frames/{frames}/rendered", summary="WADO-RS: a frame rendered")
@router.get(INSTANCE + "/frames/{frames}/thumbnail", summary="WADO-RS: thumbnail of a frame")
def rendered_frame(
    study: str, series: str, instance: str, frames: str, request: Request, caller: Reader
) -> Response:
    """One frame as JPEG or PNG (small for ``thumbnail``)."""
    (record,) = matching_instances(request, caller, study, series, instance)
    thumbnail = request.url.path.endswith("/thumbnail")
    return _render(request, record, _one_frame(frames), thumbnail=thumbnail)


@router.get(INSTANCE + "/thumbnail", summary="WADO-RS: thumbnail of an instance")
def instance_thumbnail(
    study: str, series: str, instance: str, request: Request, caller: Reader
) -> Response:
    """The middle frame of the instance, small."""
    (record,) = matching_instances(request, caller, study, series, instance)
    return _render(request, record, None, thumbnail=True)


@router.get("/studies/{study}/series/{series}/thumbnail", summary="WADO-RS: thumbnail of a series")
def series_thumbnail(study: str, series: str, request: Request, caller: Reader) -> Response:
    """The middle image of the series, small."""
    records = matching_instances(request, caller, study, series)
    return _render(request, _middle_image(records), None, thumbnail=True)


@router.get("/studies/{study}/thumbnail", summary="WADO-RS: thumbnail of a study")
def study_thumbnail(study: str, request: Request, caller: Reader) -> Response:
    """The middle image of the study's first image series, small."""
    return _render(request, _study_image(matching_instances(request, caller, study)), None, True)
