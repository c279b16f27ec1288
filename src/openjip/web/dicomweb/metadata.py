"""WADO-RS metadata (PS3.18 10.4): the DICOM JSON headers of a study's, series' or instance's
instances, with a BulkDataURI for each image's pixel data (served by :mod:`frames`).

The answer is put together from the header texts the index holds, never parsed and
re-serialised here: a 1,000-instance study is ~3 MB of JSON, and parsing it cost most of the
answer's time. Headers never hold pixel data (bulk data is left out when indexed), so an image's
PixelData element is appended as the header's last member (also its place in tag order).
"""

from __future__ import annotations

import json

from fastapi import APIRouter, Request, Response

from openjip.index import HeaderText
from openjip.web.dicomweb.lookup import Reader, matching_headers
from openjip.web.dicomweb.media import is_native
from openjip.web.dicomweb.urls import dicomweb_base

router = APIRouter()
DICOM_JSON = "application/dicom+json"
PIXEL_DATA = "7FE00010"


def with_pixel_data_uri(header: HeaderText, base: str) -> str:
    """The header text of an instance, with a BulkDataURI for its pixel data if it is an
    image (has Rows)."""
    rows, bits = (header.peeked.get(tag) for tag in ("00280010", "00280100"))
    text = header.json
    if rows is None or not text.endswith("}"):
        return text
    record = header.record
    uri = (
        f"{base}/studies/{record.StudyInstanceUID}/series/{record.SeriesInstanceUID}"
        f"/instances/{record.SOPInstanceUID}/bulkdata/{PIXEL_DATA}"
    )
    encapsulated = not is_native(record.TransferSyntaxUID)
    vr = "OB" if encapsulated or (bits or 8) <= 8 else "OW"
    element = f'"{PIXEL_DATA}":{{"vr":"{vr}","BulkDataURI":{json.dumps(uri)}}}'
    return f"{text[:-1]}{',' if text != '{}' else ''}{element}}}"


def metadata_response(request: Request, headers: list[HeaderText]) -> Response:
    """The DICOM JSON array of ``headers``."""
    base = dicomweb_base(request)
    body = "[" + ",".join(with_pixel_data_uri(header, base) for header in headers) + "]"
    return Response(body.encode(), media_type=DICOM_JSON)


@router.get("/studies/{study}/metadata", summary="WADO-RS: metadata of a study")
def study_metadata(study: str, request: Request, caller: Reader) -> Response:
    """DICOM JSON headers (bulk data left out) of every instance of the study."""
    return metadata_response(request, matching_headers(request, caller, study))


@router.get("/studies/{study}/series/{series}/metadata", summary="WADO-RS: metadata of a series")
def series_metadata(study: str, series: str, request: Request, caller: Reader) -> Response:
    """DICOM JSON headers of every instance of the series."""
    return metadata_response(request, matching_headers(request, caller, study, series))


@router.get(
    "/studies/{study}/series/{series}/instances/{instance}/metadata",
    summary="WADO-RS: metadata of an instance",
)
def instance_metadata(
    study: str, series: str, instance: str, request: Request, caller: Reader
) -> Response:
    """DICOM JSON header of one instance."""
    return metadata_response(request, matching_headers(request, caller, study, series, instance))
