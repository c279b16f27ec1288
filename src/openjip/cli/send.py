"""``openjip send``: C-STORE files and folders to a DICOM node (pynetdicom as SCU).

Files are sent as they are on disk (never decoded or transcoded): each file's SOP class and
transfer syntax become one proposed presentation context, at most 128 per association, so
files needing more contexts go out over several associations
(:mod:`~openjip.cli.dicom_files` finds and groups them, :mod:`~openjip.cli.store_scu` sends).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
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

from openjip.cli.dicom_files import DicomFile, describe, walk
from openjip.cli.environment import console, err_console, fail
from openjip.cli.store_scu import AssociationFailed, SendReport, send_files

app = typer.Typer()


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
        from openjip.access.tls import TLSConfigError, client_context

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
