"""WADO-RS: retrieve studies, series and instances as ``multipart/related`` of
``application/dicom`` exactly as stored (never transcoded); their metadata is :mod:`metadata`'s.
Which instances a path names for the caller is :mod:`lookup`'s."""

from __future__ import annotations

import functools

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from openjip.index import InstanceRecord
from openjip.storage import ObjectStore
from openjip.web.dicomweb.errors import DicomWebError
from openjip.web.dicomweb.lookup import Reader, matching_instances
from openjip.web.dicomweb.multipart import (
    new_boundary,
    parse_media_type,
    write_multipart_objects,
)

router = APIRouter()
BLOCK_BYTES = 4 << 20
"""Whole objects go out in blocks of this size: one thread-pool hand-off per block."""


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
