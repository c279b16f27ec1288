"""C-MOVE and C-GET SCP (PS3.4 C.4.2, C.4.3): instances sent exactly as stored.

The identifier's unique keys (PatientID, StudyInstanceUID, SeriesInstanceUID, SOPInstanceUID,
lists of UIDs allowed) select instances in the index. C-MOVE opens an association to the
destination named by its AE title in ``receiver.known_aes`` (unknown: 0xA801) proposing
each instance's SOP class in its stored transfer syntax; C-GET sends on the requestor's own
association (which must have proposed the storage classes with the SCP role). pynetdicom runs
the sub-operations and reports their counts and the failed SOP instance list.

"Exactly as stored": pynetdicom would decode and re-encode a dataset it is given; a
:class:`StoredInstance` is instead streamed from its Part-10 file, dataset bytes untouched.
When the peer accepted no context in the stored transfer syntax, the only change allowed is
between Implicit and Explicit VR Little Endian (same values); anything else fails as a
sub-operation (never transcoded). The one exception to "as stored": an instance of a project
whose policy de-identifies on export (:mod:`openjip.deid.policy`) is sent as its de-identified
copy, written into the scratch folder; one that may not be sent so fails as a sub-operation.
"""

from __future__ import annotations

import logging
import ssl
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from pydicom.dataset import Dataset
from pydicom.filereader import read_file_meta_info
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import build_context, evt
from pynetdicom.association import Association
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.dsutils import split_dataset
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from openjip.access.dimse import DimseAccess, Grant
from openjip.index import IndexError_, IndexUnavailable, InstanceRecord, MetadataIndex
from openjip.receiver.find import (
    BadIdentifier,
    ParsedIdentifier,
    decode_identifier,
    parse_identifier,
)
from openjip.receiver.reactor import pause_reactor
from openjip.receiver.status import NOT_AUTHORIZED, Retrieve
from openjip.storage.base import ObjectStore, StorageError, check_key
from openjip.storage.local import LocalObjectStore

LOGGER = logging.getLogger(__name__)

MAX_CONTEXTS = 128
"""Presentation contexts one association may propose (PS3.8)."""
UNIQUE_KEY_OF_LEVEL = {
    "PATIENT": "PatientID",
    "STUDY": "StudyInstanceUID",
    "SERIES": "SeriesInstanceUID",
    "IMAGE": "SOPInstanceUID",
}

LOSSLESS_REENCODINGS = (ImplicitVRLittleEndian, ExplicitVRLittleEndian)
"""Stored transfer syntaxes an instance may be re-encoded from when the peer accepted only the
other one of them: the values stay the same, only their encoding changes."""

StatusYield = tuple[Dataset | int, Dataset | None]


class StoredInstance(Dataset):
    """An instance to send from its stored file as is (see the module docstring)."""

    def __init__(self, sop_class_uid: str, sop_instance_uid: str, path: Path) -> None:
        super().__init__()
        self.SOPClassUID = sop_class_uid
        self.SOPInstanceUID = sop_instance_uid
        self.stored_path = path


def _send_stored(
    original_send: Any,
    assoc: Association,
    item: StoredInstance,
    msg_id: int,
    priority: int,
    originator_aet: str | None,
    originator_id: int | None,
) -> Dataset:
    """C-STORE the dataset bytes of ``item``'s file (pynetdicom's own chunked-file path,
    without its re-encoding fallback)."""
    file_meta, offset = split_dataset(item.stored_path)
    req = C_STORE()
    req.MessageID = msg_id
    req.Priority = priority
    req.MoveOriginatorApplicationEntityTitle = originator_aet
    req.MoveOriginatorMessageID = originator_id
    req.AffectedSOPClassUID = file_meta.MediaStorageSOPClassUID
    req.AffectedSOPInstanceUID = file_meta.MediaStorageSOPInstanceUID
    req._dataset_path = (item.stored_path, offset)
    context = assoc._get_valid_context(
        file_meta.MediaStorageSOPClassUID,
        file_meta.TransferSyntaxUID,
        "scu",
        allow_conversion=file_meta.TransferSyntaxUID in LOSSLESS_REENCODINGS,
    )
    if context.transfer_syntax[0] != file_meta.TransferSyntaxUID:
        # Only Implicit <-> Explicit VR Little Endian: pynetdicom re-encodes the same values.
        return original_send(
            assoc, item.stored_path, msg_id, priority, originator_aet, originator_id
        )
    pause_reactor(assoc)
    try:
        assoc.dimse.send_msg(req, int(context.context_id or 0))
        _, rsp = assoc.dimse.get_msg(block=True)
    finally:
        assoc._reactor_checkpoint.set()
    if rsp is None:
        assoc._handle_no_response()
        return Dataset()
    return assoc._check_received_status(rsp)


def install_stored_sending() -> None:
    """Make ``Association.send_c_store`` send :class:`StoredInstance` objects as stored
    (everything else goes to pynetdicom's own method unchanged)."""
    original = Association.send_c_store
    if getattr(original, "_openjip_stored", False):
        return

    def send_c_store(
        self: Association,
        dataset: Any,
        msg_id: int = 1,
        priority: int = 2,
        originator_aet: str | None = None,
        originator_id: int | None = None,
    ) -> Dataset:
        if isinstance(dataset, StoredInstance):
            return _send_stored(
                original, self, dataset, msg_id, priority, originator_aet, originator_id
            )
        pause_reactor(self)
        return original(self, dataset, msg_id, priority, originator_aet, originator_id)

    send_c_store._openjip_stored = True  # type: ignore[attr-defined]
    Association.send_c_store = send_c_store  # type: ignore[method-assign]


class ExportPolicy(Protocol):
    """What instances of some projects become before they leave (:mod:`openjip.deid.policy`)."""

    def on_export(self, projects: Sequence[str]) -> Callable[[bytes], bytes] | None:
        """The rewrite of an instance of ``projects`` (a ``ValueError`` refuses to send it),
        or None to send it as stored."""


class InstanceSource:
    """Matching instances and their files: the local store's own files, other stores' objects
    downloaded one at a time into a scratch folder, de-identified copies written there."""

    def __init__(
        self,
        index: MetadataIndex,
        store: ObjectStore,
        scratch_dir: Path,
        export: ExportPolicy | None = None,
    ) -> None:
        self.index = index
        self.store = store
        self.scratch_dir = scratch_dir
        self.export = export

    def matching(self, parsed: ParsedIdentifier) -> list[InstanceRecord]:
        """Instances the identifier's unique keys select; :class:`BadIdentifier` otherwise."""
        key = UNIQUE_KEY_OF_LEVEL[parsed.level]
        if not any(k.keyword == key and k.value for k in parsed.keys):
            raise BadIdentifier(
                Retrieve.IDENTIFIER_MISMATCH,
                f"{parsed.level} level retrieve needs a value for {key}",
            )
        try:
            return self.index.find_instances(parsed.query)
        except IndexUnavailable as exc:
            raise BadIdentifier(Retrieve.OUT_OF_RESOURCES, f"index unavailable: {exc}") from exc
        except IndexError_ as exc:
            raise BadIdentifier(Retrieve.UNABLE_TO_PROCESS, f"index: {exc}") from exc

    def sendable(self, records: list[InstanceRecord], is_cancelled: Any) -> Iterator[StatusYield]:
        """Pending (status, instance) pairs, the last a cancel status if C-CANCEL came."""
        with tempfile.TemporaryDirectory(dir=self._scratch()) as scratch:
            for number, record in enumerate(records):
                if is_cancelled():
                    yield Retrieve.CANCELLED.code, None
                    return
                path = self._file(record, Path(scratch) / f"{number}.dcm")
                item = StoredInstance(record.SOPClassUID, record.SOPInstanceUID, path)
                rewrite = self.export.on_export(record.projects) if self.export else None
                if rewrite is not None:
                    item = _rewritten(rewrite, item, Path(scratch) / f"{number}.out.dcm")
                yield Retrieve.PENDING.code, item
                for used in {path, item.stored_path}:
                    if used.parent == Path(scratch):
                        used.unlink(missing_ok=True)

    def _scratch(self) -> Path:
        self.scratch_dir.mkdir(parents=True, exist_ok=True)
        return self.scratch_dir

    def _file(self, record: InstanceRecord, scratch_path: Path) -> Path:
        if isinstance(self.store, LocalObjectStore):
            return self.store.root / check_key(record.object_key)
        try:
            self.store.download(record.object_key, scratch_path)
        except (StorageError, OSError) as exc:
            # The missing file makes the sub-operation fail and lists the instance as failed.
            LOGGER.error("cannot fetch %s for retrieval: %s", record.object_key, exc)
        return scratch_path


def _rewritten(
    rewrite: Callable[[bytes], bytes], item: StoredInstance, target: Path
) -> StoredInstance:
    """``item`` as its project's export policy sends it, written to ``target``; when it may not
    be sent, ``target`` stays missing, which fails the sub-operation."""
    try:
        target.write_bytes(rewrite(item.stored_path.read_bytes()))
    except (ValueError, OSError) as exc:
        LOGGER.warning("not sent (export policy): %s: %s", item.SOPInstanceUID, exc)
        return StoredInstance(item.SOPClassUID, item.SOPInstanceUID, target)
    meta = read_file_meta_info(target)
    return StoredInstance(meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID, target)


def _refusal(event: evt.Event, service: str, exc: BadIdentifier) -> Dataset:
    LOGGER.warning(
        "%s from %s refused with 0x%04X: %s",
        service,
        event.assoc.requestor.ae_title,
        exc.status.code,
        exc.comment,
    )
    return exc.status.response(exc.comment)


def _parse(event: evt.Event, grant: Grant) -> ParsedIdentifier:
    """The identifier, limited to what the calling AE may see."""
    parsed = parse_identifier(decode_identifier(event), str(event.request.AffectedSOPClassUID))
    grant.restrict(parsed.query)
    return parsed


def _contexts(records: list[InstanceRecord]) -> list[Any]:
    """One context per SOP class and stored transfer syntax (at most 128)."""
    syntaxes: dict[str, list[str]] = {}
    for record in records:
        wanted = syntaxes.setdefault(record.SOPClassUID, [])
        if record.TransferSyntaxUID not in wanted:
            wanted.append(record.TransferSyntaxUID)
    contexts = [
        build_context(sop_class, [syntax])
        for sop_class, wanted in syntaxes.items()
        for syntax in wanted
    ]
    return contexts[:MAX_CONTEXTS] or [build_context(Verification)]


class MoveHandler:
    """``EVT_C_MOVE`` handler: destination, sub-operation count, then the instances."""

    def __init__(
        self, source: InstanceSource, access: DimseAccess, tls_context: ssl.SSLContext
    ) -> None:
        self.source = source
        self.access = access
        self.tls_context = tls_context
        """Presented to destinations marked ``tls`` (their certificate verified with it)."""

    def __call__(self, event: evt.Event) -> Iterator[Any]:
        name = (event.move_destination or "").strip()
        destination = self.access.destination(name)
        decision = self.access.for_request(event, "move")
        # An AE that may not move is offered no C-MOVE context (see DimseAccess), so a
        # refusal here is a second line only.
        if not decision.allowed or destination is None:
            LOGGER.warning("C-MOVE to unknown destination %r refused (0xA801)", name)
            yield None, None
            return
        tls_args = {"tls_args": (self.tls_context, destination.host)} if destination.tls else {}
        try:
            records = self.source.matching(_parse(event, decision.grant))
        except BadIdentifier as exc:
            # pynetdicom takes a status only after the destination and a count.
            yield destination.host, destination.port, {"contexts": _contexts([]), **tls_args}
            yield 1
            yield _refusal(event, "C-MOVE", exc), None
            return
        yield destination.host, destination.port, {"contexts": _contexts(records), **tls_args}
        yield len(records)
        yield from self.source.sendable(records, lambda: event.is_cancelled)


class GetHandler:
    """``EVT_C_GET`` handler: sub-operation count, then the instances on this association."""

    def __init__(self, source: InstanceSource, access: DimseAccess) -> None:
        self.source = source
        self.access = access

    def __call__(self, event: evt.Event) -> Iterator[Any]:
        decision = self.access.for_request(event, "get")
        if not decision.allowed:
            yield 1
            yield NOT_AUTHORIZED.response(decision.comment), None
            return
        try:
            records = self.source.matching(_parse(event, decision.grant))
        except BadIdentifier as exc:
            yield 1
            yield _refusal(event, "C-GET", exc), None
            return
        yield len(records)
        yield from self.source.sendable(records, lambda: event.is_cancelled)
