"""C-STORE: what a received instance must be, and its ingest into the object store and index.

:class:`StoreService` answers every C-STORE, whoever read it from the wire: openjip's P-DATA
reader (:mod:`openjip.receiver.pdata`) hands it the temp file it streamed the dataset into;
with ``receiver.pdata_reader = pynetdicom``, :class:`StoreHandler` takes pynetdicom's
``EVT_C_STORE`` and writes the dataset into such a file first. Success (0x0000) is answered
only once the instance is durable in the store and indexed; any failure, whatever raised it,
becomes a failure status with an error comment, and the temp file is removed.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

from pynetdicom import evt, sop_class
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.service_class import StorageServiceClass

import openjip.receiver.metrics as metrics
from openjip.access.dimse import DimseAccess
from openjip.dicom import is_valid_uid
from openjip.index.base import IndexError_
from openjip.ingest import Ingestor, InvalidInstance
from openjip.receiver.filemeta import PREAMBLE, encode_file_meta
from openjip.receiver.incoming import IncomingFile
from openjip.receiver.status import NOT_AUTHORIZED, Status, Store
from openjip.storage.base import StorageError

LOGGER = logging.getLogger(__name__)

Answer = tuple[Status, str]
"""A status and its error comment ("" for none)."""


def check_command_uids(sop_class_uid: str, sop_instance_uid: str) -> Answer | None:
    """The refusal of a C-STORE request whose UIDs are not UIDs (checked before its dataset
    is written anywhere), or ``None``."""
    for name, value in (
        ("AffectedSOPClassUID", sop_class_uid),
        ("AffectedSOPInstanceUID", sop_instance_uid),
    ):
        if not is_valid_uid(value) or "\n" in value:
            return Store.CANNOT_UNDERSTAND, f"{name} of the request invalid: {value[:24]!r}"
    return None


class StoreService:
    """Answers C-STORE requests by ingesting the received file."""

    def __init__(self, ingestor: Ingestor, access: DimseAccess) -> None:
        self.ingestor = ingestor
        self.access = access

    def store(
        self,
        incoming: IncomingFile,
        *,
        sop_class_uid: str,
        sop_instance_uid: str,
        context_abstract_syntax: str,
        calling_ae: str,
    ) -> Answer:
        """Ingest the dataset received into ``incoming``; the status and error comment to
        send. The caller removes the file afterwards (a stored one was moved away already),
        whatever happens."""
        result, comment = self._store(
            incoming, sop_class_uid, sop_instance_uid, context_abstract_syntax, calling_ae
        )
        if not result.is_success:
            self.refused(result, comment, calling_ae)
        return result, comment

    @staticmethod
    def refused(result: Status, comment: str, calling_ae: str) -> None:
        """Count and log a refused C-STORE."""
        metrics.FAILURES.labels(status=f"0x{result.code:04X}").inc()
        LOGGER.warning("C-STORE from %s refused with 0x%04X: %s", calling_ae, result.code, comment)

    def _store(
        self,
        incoming: IncomingFile,
        sop_class_uid: str,
        sop_instance_uid: str,
        context_abstract_syntax: str,
        calling_ae: str,
    ) -> Answer:
        incoming.close()
        if not _is_storage(context_abstract_syntax):
            return Store.SOP_CLASS_NOT_SUPPORTED, "not a storage presentation context"
        if sop_class_uid != context_abstract_syntax:
            return Store.SOP_CLASS_NOT_SUPPORTED, f"SOP class {sop_class_uid} not of this context"
        refusal = check_command_uids(sop_class_uid, sop_instance_uid)
        if refusal is not None:
            return refusal
        decision = self.access.decide(calling_ae, "store", audit_allowed=False)
        if not decision.allowed:
            return NOT_AUTHORIZED, decision.comment
        if incoming.error is not None:
            return Store.OUT_OF_RESOURCES, f"cannot write: {incoming.error.strerror}"
        try:
            result = self.ingestor.ingest_file(
                incoming.path,
                source_ae=calling_ae,
                move=True,
                sop_instance_uid=sop_instance_uid,
                projects=[decision.grant.store_project],
            )
        except InvalidInstance as exc:
            return Store.CANNOT_UNDERSTAND, exc.reason
        except StorageError as exc:
            return Store.OUT_OF_RESOURCES, f"store unavailable: {exc}"
        except IndexError_ as exc:
            return Store.OUT_OF_RESOURCES, f"index unavailable: {exc}"
        except (OSError, MemoryError) as exc:
            return Store.OUT_OF_RESOURCES, f"cannot store: {getattr(exc, 'strerror', '') or exc}"
        except Exception as exc:
            LOGGER.exception("C-STORE from %s: unexpected failure", calling_ae)
            return Store.CANNOT_UNDERSTAND, f"cannot process: {type(exc).__name__}: {exc}"
        self.access.audit(calling_ae, "store", result.record.StudyInstanceUID, True)
        metrics.INSTANCES.inc()
        metrics.BYTES.inc(result.record.size)
        metrics.STORE_SECONDS.observe(result.store_seconds)
        return Store.SUCCESS, ""


@functools.lru_cache(maxsize=1024)
def _is_storage(abstract_syntax: str) -> bool:
    return sop_class.uid_to_service_class(abstract_syntax) is StorageServiceClass


class StoreHandler:
    """``EVT_C_STORE`` handler of the pynetdicom reader: the dataset pynetdicom gathered is
    written behind a file meta group into a temp file, then stored as openjip's reader
    stores it."""

    def __init__(self, service: StoreService, incoming_dir: Path) -> None:
        self.service = service
        self.incoming_dir = incoming_dir

    def __call__(self, event: evt.Event) -> Status | object:
        request = event.request
        assert isinstance(request, C_STORE)
        calling_ae = str(event.assoc.requestor.ae_title)
        sop_class_uid = str(request.AffectedSOPClassUID or "")
        sop_instance_uid = str(request.AffectedSOPInstanceUID or "")
        refusal = check_command_uids(sop_class_uid, sop_instance_uid)
        if refusal is not None:
            self.service.refused(*refusal, calling_ae)
            return refusal[0].response(refusal[1])
        incoming = IncomingFile(self.incoming_dir)
        try:
            incoming.write(
                PREAMBLE
                + encode_file_meta(
                    sop_class_uid=sop_class_uid,
                    sop_instance_uid=sop_instance_uid,
                    transfer_syntax=str(event.context.transfer_syntax),
                    source_ae=calling_ae,
                )
            )
            dataset = request.DataSet
            incoming.write(dataset.getvalue() if dataset is not None else b"")
            result, comment = self.service.store(
                incoming,
                sop_class_uid=sop_class_uid,
                sop_instance_uid=sop_instance_uid,
                context_abstract_syntax=str(event.context.abstract_syntax),
                calling_ae=calling_ae,
            )
        finally:
            incoming.remove()
        return result.response(comment)
