"""STOW-RS: store instances sent as ``multipart/related; type="application/dicom"``
(PS3.18 10.5) through the same durable ingest path as C-STORE, answering per instance.

Status: 200 when every instance was stored, 202 when some failed, 409 when all failed; the
body lists stored instances (ReferencedSOPSequence) and failed ones (FailedSOPSequence) with
a FailureReason code and an ErrorComment saying why. Whatever goes wrong with one part is that
part's failure: the instances stored before it are acknowledged, the ones after it are stored.

The caller needs the ``store`` action and a project it may store into (``?project=P``, else its
first); an instance of a study belonging to projects it may not store into fails with 0x0124
(not authorized). A re-sent instance whose bytes differ from the stored one fails with 0x0111
(duplicate SOP instance) and the first copy stays, unless ``OPENJIP_ACCESS__OVERWRITE_INSTANCES``
replaces it; either way the decision is audited.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from openjip.access import DENIED, AccessAudit, Action, Principal
from openjip.deid.policy import ProjectPolicies
from openjip.index import IndexUnavailable, MetadataIndex, Query
from openjip.ingest import Ingestor, InstanceConflict, InvalidInstance
from openjip.storage import StorageError
from openjip.web.access import Forbidden, require, web_access
from openjip.web.dicomweb.errors import DicomWebError
from openjip.web.dicomweb.multipart import MultipartReader, Part, parse_media_type
from openjip.web.dicomweb.urls import dicomweb_base, require_uid

router = APIRouter()
LOGGER = logging.getLogger(__name__)

CANNOT_UNDERSTAND = 0xC000
OUT_OF_RESOURCES = 0xA700
STUDY_MISMATCH = 0xA900
PROCESSING_FAILURE = 0x0110
DUPLICATE_SOP_INSTANCE = 0x0111
NOT_AUTHORIZED = 0x0124
SOURCE_AE = "STOW-RS"
Storer = Annotated[Principal, Depends(require(Action.STORE))]


@dataclass
class StowContext:
    """One STOW request: who stores into which project, and where decisions are recorded."""

    ingestor: Ingestor
    index: MetadataIndex
    caller: Principal
    project: str
    audit: AccessAudit
    study: str | None
    base: str

    def may_store_into(self, study: str) -> bool:
        """Whether the caller may add to ``study`` (a new study, or one of its projects)."""
        existing = self.index.find_studies(Query(StudyInstanceUID=[study], limit=1))
        return not existing or self.caller.may(Action.STORE, existing[0].projects)


def _value(header: dict[str, Any], tag: str) -> str:
    values = header.get(tag, {}).get("Value") or [""]
    return str(values[0])


def _failure(sop_class: str, sop_instance: str, reason: int, comment: str) -> dict[str, Any]:
    return {
        "00081150": {"vr": "UI", "Value": [sop_class]} if sop_class else {"vr": "UI"},
        "00081155": {"vr": "UI", "Value": [sop_instance]} if sop_instance else {"vr": "UI"},
        "00081197": {"vr": "US", "Value": [reason]},
        "00000902": {"vr": "LO", "Value": [comment[:64]]},
    }


def _store_part(
    context: StowContext, part: Part
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(stored item, failed item) for one part; exactly one is not ``None``."""
    try:
        return _store_readable_part(context, part)
    except Exception as error:  # one part's failure must not fail the others (logged)
        LOGGER.exception("STOW-RS: storing a part failed")
        return None, _failure("", "", PROCESSING_FAILURE, f"{type(error).__name__}: {error}")


def _store_readable_part(
    context: StowContext, part: Part
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    if part.content_type not in ("application/dicom", ""):
        return None, _failure("", "", CANNOT_UNDERSTAND, f"part is {part.content_type}")
    data = bytes(part.data)
    try:
        parsed = context.ingestor.parse(data)
    except InvalidInstance as error:
        return None, _failure("", "", CANNOT_UNDERSTAND, f"not DICOM: {error}")
    header = parsed.header
    sop_class, sop_instance = _value(header, "00080016"), _value(header, "00080018")
    study_uid = _value(header, "0020000D")
    if context.study is not None and study_uid != context.study:
        return None, _failure(
            sop_class, sop_instance, STUDY_MISMATCH, "not of the study in the URL"
        )
    if study_uid and not context.may_store_into(study_uid):
        context.audit.record(
            context.caller,
            Action.STORE,
            DENIED,
            study=study_uid,
            detail="study of a project the caller may not store into",
        )
        return None, _failure(sop_class, sop_instance, NOT_AUTHORIZED, "study not writable")
    try:
        result = context.ingestor.ingest_bytes(
            data, source_ae=SOURCE_AE, parsed=parsed, projects=[context.project]
        )
    except InstanceConflict as conflict:
        context.audit.record(
            context.caller, Action.STORE, "refused", study=study_uid, detail=str(conflict)
        )
        return None, _failure(sop_class, sop_instance, DUPLICATE_SOP_INSTANCE, str(conflict))
    except InvalidInstance as error:
        return None, _failure(sop_class, sop_instance, CANNOT_UNDERSTAND, str(error))
    except (StorageError, IndexUnavailable) as error:
        return None, _failure(sop_class, sop_instance, OUT_OF_RESOURCES, str(error))
    record = result.record
    context.audit.record(
        context.caller,
        Action.STORE,
        "replaced" if result.replaced else "stored",
        study=record.StudyInstanceUID,
        detail=f"{record.SOPInstanceUID} into {context.project}",
    )
    url = (
        f"{context.base}/studies/{record.StudyInstanceUID}/series/{record.SeriesInstanceUID}"
        f"/instances/{record.SOPInstanceUID}"
    )
    return {
        "00081150": {"vr": "UI", "Value": [record.SOPClassUID]},
        "00081155": {"vr": "UI", "Value": [record.SOPInstanceUID]},
        "00081190": {"vr": "UR", "Value": [url]},
    }, None


async def _read_parts(request: Request) -> list[Part]:
    media_type, params = parse_media_type(request.headers.get("content-type", ""))
    if media_type != "multipart/related" or "boundary" not in params:
        raise DicomWebError(
            415, 'STOW-RS takes multipart/related; type="application/dicom" with a boundary'
        )
    if params.get("type", "application/dicom") != "application/dicom":
        raise DicomWebError(415, f"parts of type {params['type']!r} are not supported")
    limit = request.app.state.settings.web.max_upload_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise DicomWebError(413, f"request body of {declared} bytes exceeds {limit} bytes")
    reader = MultipartReader(params["boundary"], limit)
    async for chunk in request.stream():
        reader.feed(chunk)
    return reader.finish()


async def _store(request: Request, caller: Principal, study: str | None) -> JSONResponse:
    wanted = request.query_params.get("project")
    project = caller.store_project(wanted)
    if project is None:
        raise Forbidden(f"{caller.name} may not store into project {wanted or '(none)'}")
    parts = await _read_parts(request)
    backends = request.app.state.backends
    settings = request.app.state.settings
    base = dicomweb_base(request)
    stored: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []

    def store_all() -> None:
        ingestor = Ingestor(
            backends.store,
            backends.index,
            max_sequence_depth=settings.dicom.max_sequence_depth,
            overwrite=settings.access.overwrite_instances,
            policy=ProjectPolicies.for_site(settings),
        )
        context = StowContext(
            ingestor, backends.index, caller, project, web_access(request).audit, study, base
        )
        for part in parts:
            ok, failure = _store_part(context, part)
            if ok is not None:
                stored.append(ok)
            if failure is not None:
                failed.append(failure)

    await run_in_threadpool(store_all)
    body: dict[str, Any] = {}
    if study is not None:
        body["00081190"] = {"vr": "UR", "Value": [f"{base}/studies/{study}"]}
    if stored:
        body["00081199"] = {"vr": "SQ", "Value": stored}
    if failed:
        body["00081198"] = {"vr": "SQ", "Value": failed}
    status = 200 if not failed else 202 if stored else 409
    return JSONResponse(body, status_code=status, media_type="application/dicom+json")


@router.post("/studies", summary="STOW-RS: store instances")
async def store_instances(request: Request, caller: Storer) -> JSONResponse:
    """Store every instance of the multipart body."""
    return await _store(request, caller, None)


@router.post("/studies/{study}", summary="STOW-RS: store instances of one study")
async def store_study_instances(study: str, request: Request, caller: Storer) -> JSONResponse:
    """Store the instances of the body that belong to ``study``; others fail with 0xA900."""
    return await _store(request, caller, require_uid(study))
