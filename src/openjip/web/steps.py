"""What an analysis pod fetches and publishes, under its step grant (:mod:`openjip.runner.grants`).

- ``GET /steps/inputs``: the step's inputs, ``{"inputs": [{"path": ..., "size": ...}]}``;
- ``GET /steps/inputs/{path}``: one input's bytes;
- ``PUT /steps/outputs/{path}``: one output, published as the local runner publishes it (a DICOM
  file ingested into the projects of the inputs, anything else stored and recorded), always under
  the grant's ``runs/<dag>/<run>/<step>/<series>/``; answers that file's part of the outcome.

Every route needs ``Authorization: Bearer <step grant>``; nothing else is accepted here, and a
grant is accepted nowhere else. A path that is not one of the grant's inputs is 404, whatever
the store holds. Each listing and each output is audited under the step's name.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from openjip.access import ALLOWED, DENIED
from openjip.access.expiring import ExpiringTable
from openjip.ingest import InstanceConflict, InvalidInstance
from openjip.runner.base import StepFailed, StepRequest
from openjip.runner.grants import InvalidGrant, verify_grant
from openjip.runner.local import LocalStepRunner
from openjip.web.access import AuthenticationRequired, web_access
from openjip.web.dicomweb.errors import DicomWebError

router = APIRouter(prefix="/steps", tags=["steps"])
LISTING_SECONDS = 600
"""How long the inputs of a grant are remembered between its downloads."""
_CHUNK = 1024 * 1024


class Grant:
    """A verified step grant: its id, its step, and who it is in the audit."""

    def __init__(self, grant_id: str, step: StepRequest) -> None:
        self.id = grant_id
        self.step = step
        self.name = f"step:{step.dag_id}/{step.run_id}/{step.step}"


def step_grant(request: Request) -> Grant:
    """The caller's verified grant; 401 without one or with a bad one."""
    access = web_access(request)
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationRequired("a step grant (Bearer) is required")
    secret = access.settings.access.step_token_secret.get_secret_value()
    if not secret:
        raise DicomWebError(404, "step grants are off: OPENJIP_ACCESS__STEP_TOKEN_SECRET is empty")
    try:
        grant_id, step = verify_grant(secret, token.strip())
    except InvalidGrant as refused:
        access.audit.record("unknown", "step_grant", DENIED, detail=str(refused))
        raise AuthenticationRequired(str(refused), error="invalid_token") from None
    return Grant(grant_id, step)


StepGrant = Annotated[Grant, Depends(step_grant)]


def _runner(request: Request) -> LocalStepRunner:
    backends = request.app.state.backends
    settings = request.app.state.settings
    return LocalStepRunner(backends.store, backends.index, settings.home_dir / "work")


def _inputs(request: Request, grant: Grant) -> dict[str, str]:
    listings: ExpiringTable[dict[str, str]] = request.app.state.step_inputs
    inputs = listings.get(grant.id)
    if inputs is None:
        try:
            inputs = _runner(request).input_objects(grant.step)
        except StepFailed as failure:
            raise DicomWebError(404, str(failure)) from failure
        listings.put(inputs, key=grant.id)
        web_access(request).audit.record(
            grant.name,
            "fetch_inputs",
            ALLOWED,
            detail=f"{len(inputs)} objects of {', '.join(grant.step.series_uids)}",
            kind="step",
        )
    return inputs


@router.get("/inputs", summary="The inputs of the caller's step")
def list_inputs(request: Request, grant: StepGrant) -> JSONResponse:
    """Each input's path in the step's input folder and its size."""
    store = request.app.state.backends.store
    inputs = _inputs(request, grant)
    listed = []
    for path, key in sorted(inputs.items()):
        info = store.head(key)
        listed.append({"path": path, "size": info.size if info else 0})
    return JSONResponse({"inputs": listed})


@router.get("/inputs/{path:path}", summary="One input of the caller's step")
def get_input(path: str, request: Request, grant: StepGrant) -> StreamingResponse:
    """The bytes of one of the grant's inputs; any other path is 404."""
    key = _inputs(request, grant).get(path)
    if key is None:
        raise DicomWebError(404, f"{path!r} is not an input of step {grant.step.step}")
    handle = request.app.state.backends.store.open(key)

    def chunks() -> Iterator[bytes]:
        with handle:
            while chunk := handle.read(_CHUNK):
                yield chunk

    return StreamingResponse(chunks(), media_type="application/octet-stream")


@router.put("/outputs/{path:path}", summary="Publish one output of the caller's step")
async def put_output(path: str, request: Request, grant: StepGrant) -> JSONResponse:
    """Store (and for DICOM ingest) one output under the step's own output prefix."""
    settings = request.app.state.settings
    scratch = settings.home_dir / "work"
    scratch.mkdir(mode=0o700, parents=True, exist_ok=True)
    descriptor, name = tempfile.mkstemp(prefix="step-output-", dir=scratch)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            async for chunk in request.stream():
                handle.write(chunk)
        parts = tuple(path.split("/"))
        try:
            outcome = await run_in_threadpool(
                _runner(request).publish_file, grant.step, parts, Path(name)
            )
        except InstanceConflict as conflict:
            web_access(request).audit.record(
                grant.name, "publish_output", DENIED, detail=str(conflict), kind="step"
            )
            raise DicomWebError(409, str(conflict)) from conflict
        except (StepFailed, InvalidInstance) as failure:
            raise DicomWebError(400, str(failure)) from failure
    finally:
        Path(name).unlink(missing_ok=True)
    web_access(request).audit.record(
        grant.name, "publish_output", ALLOWED, detail=outcome.output_keys[0], kind="step"
    )
    return JSONResponse(outcome.to_dict())
