"""WADO-RS: retrieve studies, series and instances as ``multipart/related`` of
``application/dicom`` exactly as stored (never transcoded), and their metadata as DICOM JSON
(PS3.18 10.4). Objects outside the caller's projects answer 404 like absent ones, so their
existence is not revealed. Image headers carry a BulkDataURI for their pixel data
(:mod:`frames`)."""

from __future__ import annotations

import functools
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, StreamingResponse

from openjip.access import ALLOWED, DENIED, Action, Principal
from openjip.index import InstanceRecord, Query
from openjip.storage import ObjectStore
from openjip.web.access import require, web_access
from openjip.web.dicomweb.errors import DicomWebError
from openjip.web.dicomweb.media import is_native
from openjip.web.dicomweb.multipart import (
    new_boundary,
    parse_media_type,
    write_multipart_objects,
)
from openjip.web.dicomweb.urls import dicomweb_base, require_uid

router = APIRouter()
BLOCK_BYTES = 4 << 20
"""Whole objects go out in blocks of this size: one thread-pool hand-off per block."""
ROWS, BITS_ALLOCATED, PIXEL_DATA = "00280010", "00280100", "7FE00010"
Reader = Annotated[Principal, Depends(require(Action.GET))]


def matching_instances(
    request: Request,
    caller: Principal,
    study: str,
    series: str | None = None,
    instance: str | None = None,
) -> list[InstanceRecord]:
    """The instances under a WADO-RS path that ``caller`` may retrieve; 404 (audited) if none,
    the same answer for another project's objects as for absent ones."""
    query = Query(StudyInstanceUID=[require_uid(study)])
    if series is not None:
        query.SeriesInstanceUID = [require_uid(series)]
    if instance is not None:
        query.SOPInstanceUID = [require_uid(instance)]
    visible = caller.visible_projects(Action.GET)
    if visible is not None:
        query.projects = sorted(visible)
    records = (
        request.app.state.backends.index.find_instances(
            query, with_header=request.url.path.endswith("/metadata")
        )
        if visible is None or visible
        else []
    )
    audit = web_access(request).audit
    if not records:
        audit.record(caller, Action.GET, DENIED, study=study, detail=f"404 {request.url.path}")
        raise DicomWebError(404, f"nothing stored at {request.url.path}")
    audit.record(caller, Action.GET, ALLOWED, study=study, detail=request.url.path)
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


def _retrieve(request: Request, records: list[InstanceRecord]) -> StreamingResponse:
    _check_acceptable(request, records)
    store: ObjectStore = request.app.state.backends.store
    boundary = new_boundary()
    parts = (
        (
            f"application/dicom; transfer-syntax={record.TransferSyntaxUID}",
            functools.partial(store.open, record.object_key),
        )
        for record in records
    )
    return StreamingResponse(
        write_multipart_objects(parts, boundary, BLOCK_BYTES),
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
    vr = "OB" if encapsulated or bits <= 8 else "OW"
    return {**header, PIXEL_DATA: {"vr": vr, "BulkDataURI": uri}}


def _metadata(request: Request, records: list[InstanceRecord]) -> JSONResponse:
    base = dicomweb_base(request)
    return JSONResponse(
        [_with_pixel_data_uri(record, base) for record in records],
        media_type="application/dicom+json",
    )


@router.get("/studies/{study}", summary="WADO-RS: retrieve a study")
def retrieve_study(study: str, request: Request, caller: Reader) -> StreamingResponse:
    """Every instance of the study."""
    return _retrieve(request, matching_instances(request, caller, study))


@router.get("/studies/{study}/series/{series}", summary="WADO-RS: retrieve a series")
def retrieve_series(study: str, series: str, request: Request, caller: Reader) -> StreamingResponse:
    """Every instance of the series."""
    return _retrieve(request, matching_instances(request, caller, study, series))


@router.get(
    "/studies/{study}/series/{series}/instances/{instance}", summary="WADO-RS: retrieve an instance"
)
def retrieve_instance(
    study: str, series: str, instance: str, request: Request, caller: Reader
) -> StreamingResponse:
    """One instance."""
    return _retrieve(request, matching_instances(request, caller, study, series, instance))


@router.get("/studies/{study}/metadata", summary="WADO-RS: metadata of a study")
def study_metadata(study: str, request: Request, caller: Reader) -> JSONResponse:
    """DICOM JSON headers (bulk data left out) of every instance of the study."""
    return _metadata(request, matching_instances(request, caller, study))


@router.get("/studies/{study}/series/{series}/metadata", summary="WADO-RS: metadata of a series")
def series_metadata(study: str, series: str, request: Request, caller: Reader) -> JSONResponse:
    """DICOM JSON headers of every instance of the series."""
    return _metadata(request, matching_instances(request, caller, study, series))


@router.get(
    "/studies/{study}/series/{series}/instances/{instance}/metadata",
    summary="WADO-RS: metadata of an instance",
)
def instance_metadata(
    study: str, series: str, instance: str, request: Request, caller: Reader
) -> JSONResponse:
    """DICOM JSON header of one instance."""
    return _metadata(request, matching_instances(request, caller, study, series, instance))
