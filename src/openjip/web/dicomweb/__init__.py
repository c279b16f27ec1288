"""DICOMweb (PS3.18) of a site under ``/dicom-web``: QIDO-RS search (:mod:`qido`), WADO-RS
retrieve (:mod:`wado`) and metadata (:mod:`metadata`) of what :mod:`lookup` finds for the
caller, frames and bulk data (:mod:`frames`, decoded by
:mod:`pixels`, negotiated by :mod:`media`), rendered images and thumbnails (:mod:`rendered`),
STOW-RS store (:mod:`stow`) through the same durable ingest path as C-STORE.
:mod:`attributes` maps query keys and index records to DICOM JSON; :mod:`multipart` reads and
writes ``multipart/related`` bodies.
"""

from fastapi import APIRouter

from openjip.web.dicomweb import frames, metadata, qido, rendered, stow, wado


def dicomweb_router() -> APIRouter:
    """Every DICOMweb route, to be mounted under ``/dicom-web``."""
    router = APIRouter(tags=["dicomweb"])
    router.include_router(qido.router)
    router.include_router(wado.router)
    router.include_router(metadata.router)
    router.include_router(frames.router)
    router.include_router(rendered.router)
    router.include_router(stow.router)
    return router


__all__ = ["dicomweb_router"]
