"""The Query/Retrieve services on the receiver's AE: their presentation contexts and handlers.

C-FIND lives in :mod:`openjip.receiver.find`, C-MOVE and C-GET in
:mod:`openjip.receiver.retrieve`; this module plugs both into the receiver's AE.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, evt

from openjip.access import tls
from openjip.access.dimse import DimseAccess
from openjip.config import ReceiverSettings
from openjip.ingest import Ingestor
from openjip.receiver.find import LEVELS_OF_MODEL, FindHandler
from openjip.receiver.retrieve import (
    ExportPolicy,
    GetHandler,
    InstanceSource,
    MoveHandler,
    install_stored_sending,
)

STORAGE_TRANSFER_SYNTAXES = [
    ExplicitVRLittleEndian,
    *(syntax for syntax in ALL_TRANSFER_SYNTAXES if syntax != ExplicitVRLittleEndian),
]
"""Transfer syntaxes of the storage contexts, in the order the receiver prefers them when a
peer proposes several in one context: Explicit VR Little Endian first, since most instances
are stored in it and C-GET can send them over such a context exactly as stored."""


def add_query_retrieve_contexts(ae: AE) -> None:
    """Accept the Patient Root and Study Root FIND, MOVE and GET models."""
    for model in LEVELS_OF_MODEL:
        ae.add_supported_context(model, ALL_TRANSFER_SYNTAXES)


def query_retrieve_handlers(
    settings: ReceiverSettings,
    ingestor: Ingestor,
    scratch_dir: Path,
    access: DimseAccess,
    export: ExportPolicy | None = None,
) -> list[tuple[Any, Any]]:
    """``(event, handler)`` pairs answering C-FIND, C-MOVE and C-GET from the ingestor's index
    and store; ``export`` rewrites what leaves a project that de-identifies on export."""
    install_stored_sending()
    source = InstanceSource(ingestor.index, ingestor.store, scratch_dir, export)
    return [
        (evt.EVT_C_FIND, FindHandler(ingestor.index, settings.ae_title, access)),
        (evt.EVT_C_MOVE, MoveHandler(source, access, tls.receiver_client_context(settings))),
        (evt.EVT_C_GET, GetHandler(source, access)),
    ]
