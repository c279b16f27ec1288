"""The DIMSE service of one receiver process: a pynetdicom AE answering C-ECHO, C-STORE and
the Query/Retrieve services.

Every C-STORE goes through :class:`openjip.receiver.store.StoreService`: success (0x0000) is
sent only after the instance is durable in the object store and indexed. C-STORE requests are
read and answered by :mod:`openjip.receiver.pdata`, or with ``receiver.pdata_reader =
pynetdicom`` by pynetdicom and :class:`openjip.receiver.store.StoreHandler`. The server
binds nothing; it serves what the gate admits (:meth:`ReceiverServer.hand_over`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydicom import config as pydicom_config
from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, _config, evt
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

import openjip.receiver.metrics as metrics
from openjip.access.dimse import DimseAccess
from openjip.config import ReceiverSettings
from openjip.ingest import Ingestor
from openjip.receiver.query_retrieve import (
    STORAGE_TRANSFER_SYNTAXES,
    add_query_retrieve_contexts,
    query_retrieve_handlers,
)
from openjip.receiver.reactive import ReactiveRequestHandler
from openjip.receiver.retrieve import ExportPolicy
from openjip.receiver.store import StoreHandler, StoreService
from openjip.receiver.transport import ReceiverServer, Timeouts

LOGGER = logging.getLogger(__name__)


def configure_pynetdicom() -> None:
    """Process-wide pynetdicom settings the receiver relies on."""
    # pynetdicom's standard handlers format a log line per PDU even when nobody reads it.
    _config.LOG_HANDLER_LEVEL = "none"
    # Command sets are encoded by pydicom for every response; checking each value against
    # its VR's regex costs ~0.3 ms per instance. Received datasets are never re-encoded.
    pydicom_config.settings.writing_validation_mode = pydicom_config.IGNORE


def build_ae(settings: ReceiverSettings) -> AE:
    """An AE accepting Verification and every storage SOP class in every transfer syntax."""
    ae = AE(ae_title=settings.ae_title)
    ae.maximum_pdu_size = settings.max_pdu
    ae.maximum_associations = settings.max_associations
    # After the gate, the only waits of the ACSE (ARTIM) are for the peer's close after a
    # release or abort; the idle timer ends silent associations; the DIMSE timeout bounds
    # waits for responses during C-MOVE/C-GET.
    ae.acse_timeout = settings.release_timeout
    ae.network_timeout = settings.idle_timeout
    ae.dimse_timeout = settings.message_timeout
    ae.require_calling_aet = list(settings.allowed_calling_aes)
    ae.require_called_aet = settings.require_called_ae
    ae.add_supported_context(Verification, ALL_TRANSFER_SYNTAXES)
    for context in AllStoragePresentationContexts:
        assert context.abstract_syntax is not None
        # Both roles, so that a C-GET requestor's SCP role selection is accepted.
        ae.add_supported_context(
            context.abstract_syntax, STORAGE_TRANSFER_SYNTAXES, scu_role=True, scp_role=True
        )
    add_query_retrieve_contexts(ae)
    return ae


def _on_open(event: evt.Event) -> None:
    metrics.OPEN_ASSOCIATIONS.inc()


def _on_close(event: evt.Event) -> None:
    metrics.OPEN_ASSOCIATIONS.dec()


def make_server(
    settings: ReceiverSettings,
    ingestor: Ingestor,
    incoming_dir: Path,
    *,
    address: tuple[str, int],
    on_finished: Callable[[Any], None],
    access: DimseAccess | None = None,
    export: ExportPolicy | None = None,
) -> ReceiverServer:
    """A server for the associations the gate admits on ``address``; ``on_finished`` is
    called with each one's admission when it ended; ``access`` decides what each calling AE
    may do (by default without an audit); ``export`` rewrites what C-MOVE and C-GET send of a
    project that de-identifies on export."""
    configure_pynetdicom()
    incoming_dir.mkdir(parents=True, exist_ok=True)
    access = access or DimseAccess(settings)
    ae = build_ae(settings)
    store_service = StoreService(ingestor, access)
    handlers: list[Any] = [
        (evt.EVT_REQUESTED, access.on_association_requested),
        (evt.EVT_C_ECHO, access.on_echo),
        (evt.EVT_CONN_OPEN, _on_open),
        (evt.EVT_CONN_CLOSE, _on_close),
        *query_retrieve_handlers(settings, ingestor, incoming_dir, access, export),
    ]
    own_reader = settings.pdata_reader == "openjip"
    if not own_reader:
        handlers.append((evt.EVT_C_STORE, StoreHandler(store_service, incoming_dir)))
    server = ae.make_server(
        address,
        evt_handlers=handlers,
        server_class=ReceiverServer,
        store_service=store_service,
        incoming_dir=incoming_dir,
        timeouts=Timeouts(
            idle=settings.idle_timeout, pdu=settings.pdu_timeout, message=settings.message_timeout
        ),
        own_pdata_reader=own_reader,
        on_finished=on_finished,
        request_handler=ReactiveRequestHandler,
    )
    assert isinstance(server, ReceiverServer)
    return server
