"""WADO-RS: retrieve studies, series and instances as ``multipart/related`` of
``application/dicom`` exactly as stored (never transcoded), and their metadata as DICOM JSON
(PS3.18 10.4), image headers with a BulkDataURI for their pixel data (:mod:`frames`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse

from openjip.index import InstanceRecord, Query
from openjip.storage import ObjectStore
from openjip.web.dicomweb.errors import DicomWebError
from openjip.web.dicomweb.media import is_native
from openjip.web.dicomweb.multipart import new_boundary, parse_media_type, write_multipart
from openjip.web.dicomweb.urls import dicomweb_base, require_uid

router = APIRouter()
CHUNK_BYTES = 1 << 20
ROWS, BITS_ALLOCATED, PIXEL_DATA = "00280010", "00280100", "7FE00010"


def matching_instances(
    request: Request, study: str, series: str | None = None, instance: str | None = None
) -> list[InstanceRecord]:
    """The stored instances under a WADO-RS path, sorted as the index returns them; 404 if none."""
    query = Query(StudyInstanceUID=[require_uid(study)])
    if series is not None:
        query.SeriesInstanceUID = [require_uid(series)]
    if instance is not None:
        query.SOPInstanceUID = [require_uid(instance)]
    records = request.app.state.backends.index.find_instances(
        query, with_header=request.url.path.endswith("/metadata")
    )
    if not records:
        raise DicomWebError(404, f"nothing stored at {request.url.path}")
    return records


def _check_acceptable(request: Request, records: list[InstanceRecord]) -> None:
    """406 unless the client accepts multipart/related application/dicom as stored."""
    stored = {record.TransferSyntaxUID for record in records}
    accept = request.headers.get("accept", "*/*")
    for media_range in accept.split(","):
        media_type, params = parse_media_type(media_range.strip() or "*/*")
        if media_type in ("*/*", "multipart/*"):
            return
        if media_type != "multipart/related":
            continue
        if params.get("type", "application/dicom") not in ("application/dicom", "*/*"):
            continue
        wanted = params.get("transfer-syntax", "*")
        if wanted == "*" or stored == {wanted}:
            return
    raise DicomWebError(
        406,
        'instances are served as multipart/related; type="application/dicom" in their stored '
        f"transfer syntax ({', '.join(sorted(stored))}); Accept {accept!r} allows none of that",
    )


def _chunks(store: ObjectStore, key: str) -> Iterator[bytes]:
    with store.open(key) as source:
        while chunk := source.read(CHUNK_BYTES):
            yield chunk


def _retrieve(request: Request, records: list[InstanceRecord]) -> StreamingResponse:
    _check_acceptable(request, records)
    store: ObjectStore = request.app.state.backends.store
    boundary = new_boundary()
    parts = (
        (
            f"application/dicom; transfer-syntax={record.TransferSyntaxUID}",
            _chunks(store, record.object_key),
        )
        for record in records
    )
    return StreamingResponse(
        write_multipart(parts, boundary),
        media_type=f'multipart/related; type="application/dicom"; boundary={boundary}',
    )


def _with_pixel_data_uri(record: InstanceRecord, base: str) -> dict[str, Any]:
    """The header of ``record`` with a BulkDataURI for its pixel data, if it is an image."""
    header = record.header
    if ROWS not in header or PIXEL_DATA in header:
        return header
    bits = (header.get(BITS_ALLOCATED, {}).get("Value") or [8])[0]
    encapsulated = not is_native(record.TransferSyntaxUID)
    uri = (
        f"{base}/studies/{record.StudyInstanceUID}/series/{record.SeriesInstanceUID}"
        f"/instances/{record.SOPInstanceUID}/bulkdata/{PIXEL_DATA}"
    )
    return {
        **header,
        PIXEL_DATA: {"vr": "OB" if encapsulated or bits <= 8 else "OW", "BulkDataURI": uri},
    }


def _metadata(request: Request, records: list[InstanceRecord]) -> JSONResponse:
    base = dicomweb_base(request)
    return JSONResponse(
        [_with_pixel_data_uri(record, base) for record in records],
        media_type="application/dicom+json",
    )


@router.get("/studies/{study}", summary="WADO-RS: retrieve a study")
def retrieve_study(study: str, request: Request) -> StreamingResponse:
    """Every instance of the study."""
    return _retrieve(request, matching_instances(request, study))


@router.get("/studies/{study}/series/{series}", summary="WADO-RS: retrieve a series")
def retrieve_series(study: str, series: str, request: Request) -> StreamingResponse:
    """Every instance of the series."""
    return _retrieve(request, matching_instances(request, study, series))


@router.get(
    "/studies/{study}/series/{series}/instances/{instance}", summary="WADO-RS: retrieve an instance"
)
def retrieve_instance(
    study: str, series: str, instance: str, request: Request
) -> StreamingResponse:
    """One instance."""
    return _retrieve(request, matching_instances(request, study, series, instance))


@router.get("/studies/{study}/metadata", summary="WADO-RS: metadata of a study")
def study_metadata(study: str, request: Request) -> JSONResponse:
    """DICOM JSON headers (bulk data left out) of every instance of the study."""
    return _metadata(request, matching_instances(request, study))


@router.get("/studies/{study}/series/{series}/metadata", summary="WADO-RS: metadata of a series")
def series_metadata(study: str, series: str, request: Request) -> JSONResponse:
    """DICOM JSON headers of every instance of the series."""
    return _metadata(request, matching_instances(request, study, series))


@router.get(
    "/studies/{study}/series/{series}/instances/{instance}/metadata",
    summary="WADO-RS: metadata of an instance",
)
def instance_metadata(study: str, series: str, instance: str, request: Request) -> JSONResponse:
    """DICOM JSON header of one instance."""
    return _metadata(request, matching_instances(request, study, series, instance))
