"""The DIMSE service of one receiver process: a pynetdicom AE answering C-ECHO, C-STORE and
the Query/Retrieve services.

Every C-STORE goes through :class:`openjip.ingest.Ingestor`: success (0x0000) is sent only
after the instance is durable in the object store and indexed. C-STORE requests are read and
answered by :mod:`openjip.receiver.pdata`, which calls :class:`StoreService`.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydicom import config as pydicom_config
from pynetdicom import (
    AE,
    ALL_TRANSFER_SYNTAXES,
    AllStoragePresentationContexts,
    _config,
    evt,
    sop_class,
)
from pynetdicom.service_class import StorageServiceClass
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from openjip.access import tls
from openjip.access.dimse import DimseAccess
from openjip.config import ReceiverSettings
from openjip.index.base import IndexError_
from openjip.ingest import Ingestor, InvalidInstance
from openjip.receiver import metrics, status
from openjip.receiver.query_retrieve import (
    STORAGE_TRANSFER_SYNTAXES,
    add_query_retrieve_contexts,
    query_retrieve_handlers,
)
from openjip.receiver.reactive import ReactiveRequestHandler
from openjip.receiver.status import Status
from openjip.receiver.transport import ReceiverServer
from openjip.storage.base import StorageError

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
    ae.network_timeout = 120
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


class StoreService:
    """Answers C-STORE requests by ingesting the received file (see :mod:`.pdata`)."""

    def __init__(self, ingestor: Ingestor, access: DimseAccess) -> None:
        self.ingestor = ingestor
        self.access = access

    def store(
        self,
        path: Path,
        *,
        write_error: OSError | None,
        sop_class_uid: str,
        context_abstract_syntax: str,
        calling_ae: str,
    ) -> tuple[Status, str]:
        """Ingest the dataset received into ``path``; the status and error comment to send."""
        result, comment = self._store(
            path, write_error, sop_class_uid, context_abstract_syntax, calling_ae
        )
        if result.code != status.SUCCESS.code:
            metrics.FAILURES.labels(status=f"0x{result.code:04X}").inc()
            LOGGER.warning(
                "C-STORE from %s refused with 0x%04X: %s", calling_ae, result.code, comment
            )
        return result, comment

    def _store(
        self,
        path: Path,
        write_error: OSError | None,
        sop_class_uid: str,
        context_abstract_syntax: str,
        calling_ae: str,
    ) -> tuple[Status, str]:
        if not _is_storage(context_abstract_syntax):
            return status.SOP_CLASS_NOT_SUPPORTED, "not a storage presentation context"
        if sop_class_uid != context_abstract_syntax:
            return (
                status.SOP_CLASS_NOT_SUPPORTED,
                f"SOP class {sop_class_uid} not of this context",
            )
        decision = self.access.decide(calling_ae, "store", audit_allowed=False)
        if not decision.allowed:
            return status.NOT_AUTHORIZED, decision.comment
        if write_error is not None:
            return status.OUT_OF_RESOURCES, f"cannot write: {write_error.strerror}"
        try:
            result = self.ingestor.ingest_file(
                path,
                source_ae=calling_ae,
                move=True,
                projects=[decision.grant.store_project],
            )
        except InvalidInstance as exc:
            return status.CANNOT_UNDERSTAND, exc.reason
        except StorageError as exc:
            return status.OUT_OF_RESOURCES, f"store unavailable: {exc}"
        except IndexError_ as exc:
            return status.OUT_OF_RESOURCES, f"index unavailable: {exc}"
        except OSError as exc:
            return status.OUT_OF_RESOURCES, f"cannot write: {exc.strerror}"
        self.access.audit(calling_ae, "store", result.record.StudyInstanceUID, True)
        metrics.INSTANCES.inc()
        metrics.BYTES.inc(result.record.size)
        metrics.STORE_SECONDS.observe(result.store_seconds)
        return status.SUCCESS, ""


@functools.lru_cache(maxsize=1024)
def _is_storage(abstract_syntax: str) -> bool:
    return sop_class.uid_to_service_class(abstract_syntax) is StorageServiceClass


def _on_open(event: evt.Event) -> None:
    metrics.OPEN_ASSOCIATIONS.inc()


def _on_close(event: evt.Event) -> None:
    metrics.OPEN_ASSOCIATIONS.dec()


def make_server(
    settings: ReceiverSettings,
    ingestor: Ingestor,
    incoming_dir: Path,
    *,
    listen: bool = True,
    on_close: Callable[[], Any] | None = None,
    access: DimseAccess | None = None,
) -> ReceiverServer:
    """A started-up (not yet serving) server; ``listen=False`` for handed-over connections."""
    configure_pynetdicom()
    incoming_dir.mkdir(parents=True, exist_ok=True)
    access = access or DimseAccess(settings)
    ae = build_ae(settings)
    handlers: list[Any] = [
        (evt.EVT_REQUESTED, access.on_association_requested),
        (evt.EVT_C_ECHO, access.on_echo),
        (evt.EVT_CONN_OPEN, _on_open),
        (evt.EVT_CONN_CLOSE, _on_close),
        *query_retrieve_handlers(settings, ingestor, incoming_dir, access),
    ]
    if on_close is not None:
        handlers.append((evt.EVT_CONN_CLOSE, lambda event: on_close()))
    server = ae.make_server(
        (settings.host, settings.port),
        evt_handlers=handlers,
        server_class=ReceiverServer,
        store_service=StoreService(ingestor, access),
        incoming_dir=incoming_dir,
        listen=listen,
        tls_context=tls.server_context(settings),
        request_handler=ReactiveRequestHandler,
    )
    assert isinstance(server, ReceiverServer)
    ae._servers.append(server)  # so AE.shutdown() stops it, as with start_server()
    return server
