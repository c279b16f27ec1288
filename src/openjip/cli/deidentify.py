"""``openjip deidentify``: write DICOM files de-identified with the PS3.15 Basic Profile and
the options asked for, with the site's pseudonyms (:mod:`openjip.deid`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from openjip.cli.dicom_files import walk
from openjip.cli.environment import err_console, fail, load_settings
from openjip.deid.profile import OPTIONS, ProfileError, build_profile
from openjip.deid.pseudonyms import Pseudonyms, site_secret
from openjip.deid.run import Report, deidentify_files
from openjip.deid.walker import Deidentifier
from openjip.state import StateTooNew

app = typer.Typer()


def _summarise(report: Report) -> None:
    err_console.print(
        f"de-identified {report.instances} instances; {len(report.quarantined)} quarantined,"
        f" {len(report.failures)} failed; check {'passed' if report.check_passed else 'FAILED'}",
        soft_wrap=True,
    )
    for title, rows in (("quarantined", report.quarantined), ("failed", report.failures)):
        for file, reason in rows:
            err_console.print(f"{title}: {escape(file)}: {escape(reason)}", soft_wrap=True)
    for leak in report.leaks:
        err_console.print(
            f"identifying value {escape(leak.hint)} left in {escape(leak.output)}"
            f" at byte {leak.offset}",
            soft_wrap=True,
        )


@app.command()
def deidentify(
    inputs: Annotated[
        list[Path], typer.Argument(help="DICOM files and folders (recursive).", exists=True)
    ],
    out: Annotated[Path, typer.Option("--out", help="Folder for the de-identified files.")],
    option: Annotated[
        list[str] | None,
        typer.Option(
            "--option",
            help=f"A profile option (repeatable): {', '.join(OPTIONS)}.",
            show_default=False,
        ),
    ] = None,
    report_file: Annotated[
        Path | None, typer.Option("--report", help="Write the run's report (JSON) here.")
    ] = None,
    allow_quarantine: Annotated[
        bool,
        typer.Option(
            "--allow-quarantine", help="Exit 0 even when instances were quarantined (not written)."
        ),
    ] = False,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            min=1,
            help="Instances de-identified at once (disk reads and writes overlap the work).",
        ),
    ] = 4,
) -> None:
    """De-identify DICOM files with the PS3.15 Basic Profile and its options, into a folder.

    Patient ID and name become the site's keyed pseudonym (the secret is deid.secret under
    OPENJIP_HOME), UIDs are remapped the same way in every run, and the run checks that no
    identifying value of a source is left in its output. Exit code 1 on a failure, a failed
    check or (without --allow-quarantine) a quarantined instance; 2 on bad options.

    Example: openjip deidentify study/ --out deid/ --option retain-longitudinal-modified-dates
    """
    try:
        profile = build_profile(option or ())
    except ProfileError as error:
        fail(str(error), code=2)
    settings = load_settings()
    try:
        secret = site_secret(settings.home_dir, settings.deid_secret_path)
    except StateTooNew as error:
        fail(str(error))
    deidentifier = Deidentifier(profile, Pseudonyms(secret), pixel_rules=settings.deid.pixel_rules)
    files = list(walk(inputs))
    columns = (TextColumn("de-identifying"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=err_console, transient=True) as progress:
        task = progress.add_task("files", total=len(files))
        report = deidentify_files(
            files, out, deidentifier, workers=workers, advance=lambda: progress.advance(task)
        )
    if report_file is not None:
        report.write(report_file)
    _summarise(report)
    if report.failed(allow_quarantine):
        raise typer.Exit(1)
