"""``openjip send``: C-STORE files and folders to a DICOM node (pynetdicom as SCU).

Files are sent as they are on disk (never decoded or transcoded): each file's SOP class and
transfer syntax become one proposed presentation context, at most 128 per association, so
files needing more contexts go out over several associations.
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import typer
from pydicom import dcmread
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID
from pynetdicom import AE, _config, evt
from pynetdicom.association import Association
from pynetdicom.status import STORAGE_SERVICE_CLASS_STATUS, code_to_category
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from openjip.access.tls import TLSConfigError, client_context
from openjip.cli.environment import console, err_console, fail

app = typer.Typer()

MAX_CONTEXTS = 128
"""Presentation contexts one association may propose (PS3.8: odd IDs 1-255)."""


@dataclass(frozen=True)
class DicomFile:
    """A Part-10 file to send, described by its file meta information."""

    path: Path
    sop_class: UID
    sop_instance: str
    transfer_syntax: UID
    size: int
    meta_matches: bool = True
    """Whether the file meta names the same SOP class and instance as the dataset."""

    @property
    def context(self) -> tuple[UID, UID]:
        """The presentation context the file needs: (SOP class, transfer syntax)."""
        return self.sop_class, self.transfer_syntax


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
gets past pynetdicom's rare loss of a response under heavy CPU load (its reactor thread can
take the C-STORE-RSP meant for ``send_c_store``)."""


def walk(paths: Iterable[Path]) -> Iterator[Path]:
    """Every file under ``paths`` (folders recursively, in name order)."""
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file())
        else:
            yield path


def describe(path: Path) -> DicomFile | str:
    """The file to send, or the reason it is not a DICOM file we can send."""
    try:
        ds = dcmread(path, stop_before_pixels=True, specific_tags=["SOPClassUID", "SOPInstanceUID"])
    except InvalidDicomError:
        return "not a DICOM Part-10 file"
    except (OSError, ValueError, EOFError, KeyError) as error:
        return f"unreadable DICOM header: {error}"
    sop_class = str(ds.get("SOPClassUID") or ds.file_meta.get("MediaStorageSOPClassUID") or "")
    sop_instance = str(ds.get("SOPInstanceUID") or "")
    transfer_syntax = str(ds.file_meta.get("TransferSyntaxUID") or "")
    if not (sop_class and sop_instance and transfer_syntax):
        return "lacks SOP Class UID, SOP Instance UID or Transfer Syntax UID"
    return DicomFile(
        path=path,
        sop_class=UID(sop_class),
        sop_instance=sop_instance,
        transfer_syntax=UID(transfer_syntax),
        size=path.stat().st_size,
        meta_matches=(
            ds.file_meta.get("MediaStorageSOPClassUID") == sop_class
            and ds.file_meta.get("MediaStorageSOPInstanceUID") == sop_instance
        ),
    )


def plan_associations(files: list[DicomFile]) -> list[list[DicomFile]]:
    """Group ``files`` so that each group needs at most :data:`MAX_CONTEXTS` contexts."""
    contexts = sorted({f.context for f in files})
    group_of = {context: i // MAX_CONTEXTS for i, context in enumerate(contexts)}
    groups: list[list[DicomFile]] = [[] for _ in range((len(contexts) - 1) // MAX_CONTEXTS + 1)]
    for f in files:
        groups[group_of[f.context]].append(f)
    return [group for group in groups if group]


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
        if item.meta_matches:
            status = assoc.send_c_store(item.path)
        else:
            # The file meta would announce the wrong instance: send the dataset's own UIDs,
            # which means decoding it (rare, broken files only).
            ds = dcmread(item.path)
            ds.file_meta.MediaStorageSOPClassUID = item.sop_class
            ds.file_meta.MediaStorageSOPInstanceUID = UID(item.sop_instance)
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


def _print_report(report: SendReport, skipped: int, seconds: float) -> None:
    mib = report.sent_bytes / (1 << 20)
    total = report.sent + len(report.failures)
    console.print(
        f"sent {report.sent} of {total} instances ({mib:.1f} MiB) in {seconds:.1f} s"
        + (f", {skipped} files skipped" if skipped else ""),
        soft_wrap=True,
    )
    for title, rows in (("Warnings", report.warnings), ("Failures", report.failures)):
        if not rows:
            continue
        table = Table(title=f"{title} ({len(rows)})", title_justify="left")
        table.add_column("File", overflow="fold")
        table.add_column("Status")
        table.add_column("Meaning", overflow="fold")
        for row in rows:
            status = "-" if row.status is None else f"0x{row.status:04X}"
            table.add_row(escape(str(row.path)), status, escape(row.reason))
        console.print(table)


def _check_ae(value: str) -> str:
    if not 0 < len(value) <= 16 or "\\" in value or not value.isprintable():
        raise typer.BadParameter(f"{value!r} is not an AE title (1-16 printable characters)")
    return value


@app.command()
def send(
    paths: Annotated[
        list[Path],
        typer.Argument(
            exists=True,
            readable=True,
            metavar="PATH",
            help="DICOM files or folders (recursive).",
        ),
    ],
    host: Annotated[str, typer.Option(help="Host of the receiving DICOM node.")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(min=1, max=65535, help="DICOM port of the receiving node.")
    ] = 11112,
    called_ae: Annotated[
        str, typer.Option(callback=_check_ae, help="AE title of the receiving node.")
    ] = "OPENJIP",
    calling_ae: Annotated[
        str, typer.Option(callback=_check_ae, help="Our AE title.")
    ] = "OPENJIP_SCU",
    tls: Annotated[
        bool, typer.Option(help="Speak DICOM TLS; implied by the other --tls-* options.")
    ] = False,
    tls_ca: Annotated[
        Path | None,
        typer.Option(exists=True, help="PEM CAs the node's certificate must be signed by."),
    ] = None,
    tls_cert: Annotated[
        Path | None, typer.Option(exists=True, help="Our PEM client certificate.")
    ] = None,
    tls_key: Annotated[
        Path | None, typer.Option(exists=True, help="PEM private key of --tls-cert.")
    ] = None,
) -> None:
    """Send DICOM files and folders to a DICOM node with C-STORE.

    Files that are not DICOM are skipped with a note. Exit code 1 when any instance failed
    or the association was refused; the failures are listed with their DIMSE status.

    Example: openjip send ~/scans/ct-001/ --host 127.0.0.1 --port 11112 --called-ae OPENJIP

    Over DICOM TLS: openjip send scan/ --host pacs.example --port 2762 --tls-ca ca.pem
    """
    tls_context = None
    if tls or tls_ca or tls_cert or tls_key:
        try:
            tls_context = client_context(tls_ca, tls_cert, tls_key)
        except TLSConfigError as error:
            fail(str(error))
    files: list[DicomFile] = []
    skipped = 0
    for path in walk(paths):
        described = describe(path)
        if isinstance(described, DicomFile):
            files.append(described)
        else:
            skipped += 1
            err_console.print(
                f"[yellow]skipped[/] {escape(str(path))}: {escape(described)}", soft_wrap=True
            )
    if not files:
        fail("no DICOM files to send")
    started = time.monotonic()
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(binary_units=True),
        TransferSpeedColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
        disable=not err_console.is_terminal,
    ) as progress:
        task = progress.add_task(f"sending 0/{len(files)}", total=sum(f.size for f in files))
        done = 0

        def advance(item: DicomFile) -> None:
            nonlocal done
            done += 1
            progress.update(task, advance=item.size, description=f"sending {done}/{len(files)}")

        try:
            report = send_files(
                files,
                host=host,
                port=port,
                called_ae=called_ae,
                calling_ae=calling_ae,
                on_sent=advance,
                tls_context=tls_context,
            )
        except AssociationFailed as error:
            progress.stop()
            fail(str(error))
    _print_report(report, skipped, time.monotonic() - started)
    if report.failures:
        raise typer.Exit(1)
