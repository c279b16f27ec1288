"""C-STORE of described files over pynetdicom associations (openjip as SCU): one association
per group of files, proposing exactly the contexts the group needs, associating again when one
is lost, every outcome recorded with its DIMSE status."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pydicom import dcmread
from pydicom.uid import UID
from pynetdicom import AE, _config, evt
from pynetdicom.association import Association
from pynetdicom.status import STORAGE_SERVICE_CLASS_STATUS, code_to_category

from openjip.cli.dicom_files import DicomFile, plan_associations
from openjip.receiver.reactor import pause_reactor


@dataclass(frozen=True)
class Failure:
    """One file that was not stored, with the DIMSE status when the peer gave one."""

    path: Path
    reason: str
    status: int | None = None


@dataclass
class SendReport:
    """What a send did."""

    sent: int = 0
    sent_bytes: int = 0
    warnings: list[Failure] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)


class AssociationFailed(Exception):
    """The peer could not be reached, refused the association, or accepted no context."""


class ConnectionLost(Exception):
    """The association ended (abort, DIMSE timeout) before the peer answered a C-STORE."""


RECONNECTS = 3
"""How often one group of files may lose its association before the rest are given up.

Re-sending the unanswered instance is safe (storage is idempotent per SOP Instance UID) and
gets past an association lost for any other reason (abort, DIMSE timeout) without giving up
the rest of the group."""


def status_meaning(code: int) -> str:
    """The Storage Service meaning of a DIMSE status code."""
    return STORAGE_SERVICE_CLASS_STATUS.get(code, ("", "Unknown status"))[1] or "Success"


def _set_nodelay(event: evt.Event) -> None:
    """Send each PDU at once: delayed ACKs would stall every C-STORE by ~40 ms."""
    sock = event.assoc.dul.socket.socket if event.assoc.dul.socket else None
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _associate(
    group: list[DicomFile],
    host: str,
    port: int,
    called_ae: str,
    calling_ae: str,
    tls_context: ssl.SSLContext | None = None,
) -> Association:
    """An established association proposing exactly the contexts ``group`` needs."""
    ae = AE(ae_title=calling_ae)
    ae.maximum_pdu_size = 0
    for sop_class, transfer_syntax in sorted({f.context for f in group}):
        ae.add_requested_context(sop_class, transfer_syntax)
    seen: dict[str, str] = {}

    def remember_answer(event: evt.Event) -> None:
        primitive = event.primitive  # type: ignore[attr-defined]
        if getattr(primitive, "result", None) in (0x01, 0x02):
            seen["rejected"] = f"{primitive.reason_str} ({primitive.source_str})"

    def remember_connection(event: evt.Event) -> None:
        seen["connected"] = "yes"
        _set_nodelay(event)

    assoc = ae.associate(
        host,
        port,
        ae_title=called_ae,
        max_pdu=0,
        tls_args=(tls_context, host) if tls_context is not None else None,
        evt_handlers=[
            (evt.EVT_CONN_OPEN, remember_connection),
            (evt.EVT_ACSE_RECV, remember_answer),
            (evt.EVT_ACCEPTED, lambda event: seen.setdefault("accepted", "yes")),
        ],
    )
    if assoc.is_established:
        return assoc
    where = f"{called_ae}@{host}:{port}"
    if assoc.is_rejected:
        reason = seen.get("rejected", "no reason given")
        raise AssociationFailed(f"association rejected by {where}: {reason}")
    if "connected" not in seen:
        why = "TLS handshake failed or nothing listening" if tls_context else "nothing listening?"
        raise AssociationFailed(f"cannot connect to {host}:{port} ({why})")
    if "accepted" in seen:
        raise AssociationFailed(f"{where} accepted none of the proposed presentation contexts")
    hint = "; over TLS: did it refuse our certificate?" if tls_context else ""
    raise AssociationFailed(f"association with {where} failed (aborted or timed out{hint})")


def _store(assoc: Association, item: DicomFile, report: SendReport) -> None:
    """C-STORE one file and record the outcome in ``report``; :class:`ConnectionLost` when
    no response came."""
    try:
        pause_reactor(assoc)
        if item.meta_matches:
            status = assoc.send_c_store(item.path)
        else:
            # The file meta would announce the wrong instance: send the dataset's own UIDs,
            # which means decoding it (rare, broken files only).
            ds = dcmread(item.path)
            ds.file_meta.MediaStorageSOPClassUID = item.sop_class
            ds.file_meta.MediaStorageSOPInstanceUID = UID(item.sop_instance)
            pause_reactor(assoc)
            status = assoc.send_c_store(ds)
    except ValueError:
        report.failures.append(
            Failure(
                item.path,
                f"peer accepted no context for {item.sop_class.name} "
                f"in {item.transfer_syntax.name}",
            )
        )
        return
    if "Status" not in status:
        raise ConnectionLost("no response (association aborted)")
    code = int(status.Status)
    comment = str(status.get("ErrorComment", "") or "")
    meaning = status_meaning(code) + (f": {comment}" if comment else "")
    category = code_to_category(code)
    if category in ("Success", "Warning"):
        report.sent += 1
        report.sent_bytes += item.size
        if category == "Warning":
            report.warnings.append(Failure(item.path, meaning, code))
    else:
        report.failures.append(Failure(item.path, meaning, code))


def send_files(
    files: list[DicomFile],
    *,
    host: str,
    port: int,
    called_ae: str,
    calling_ae: str,
    on_sent: Callable[[DicomFile], None] = lambda _: None,
    tls_context: ssl.SSLContext | None = None,
) -> SendReport:
    """C-STORE ``files`` to ``called_ae`` at ``host:port``, as stored on disk.

    Raises :class:`AssociationFailed` when the first association cannot be made; files of a
    later association that fails are reported as failures.
    """
    report = SendReport()
    chunked = _config.STORE_SEND_CHUNKED_DATASET
    # Stream each file's encoded dataset unchanged instead of decoding and re-encoding it.
    _config.STORE_SEND_CHUNKED_DATASET = True
    try:
        for number, group in enumerate(plan_associations(files)):
            _send_group(
                group,
                (host, port, called_ae, calling_ae, tls_context),
                report,
                on_sent,
                may_raise=number == 0,
            )
    finally:
        _config.STORE_SEND_CHUNKED_DATASET = chunked
    return report


def _send_group(
    group: list[DicomFile],
    peer: tuple[str, int, str, str, ssl.SSLContext | None],
    report: SendReport,
    on_sent: Callable[[DicomFile], None],
    *,
    may_raise: bool,
) -> None:
    """Send one group over one association, associating again when it is lost."""
    pending = list(group)
    lost = 0
    while pending:
        try:
            assoc = _associate(pending, *peer)
        except AssociationFailed as error:
            if may_raise and len(pending) == len(group):
                raise
            reason = str(error)
            break
        try:
            while pending:
                _store(assoc, pending[0], report)
                on_sent(pending.pop(0))
        except ConnectionLost as error:
            lost += 1
            reason = f"{error}; gave up after {lost} associations"
            if lost > RECONNECTS:
                break
        finally:
            if assoc.is_established:
                assoc.release()
    for item in pending:
        report.failures.append(Failure(item.path, reason))
        on_sent(item)
