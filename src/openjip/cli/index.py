"""``openjip index``: maintenance of the metadata index (rebuild from the object store)."""

from __future__ import annotations

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from openjip.cli.environment import console, err_console, fail, load_settings
from openjip.index import IndexError_, open_index
from openjip.storage import StorageError, open_store

app = typer.Typer(name="index", help="Maintain the metadata index.", no_args_is_help=True)


@app.command()
def rebuild() -> None:
    """Recreate the index from the object store alone (after loss or corruption of the index).

    Objects that cannot be read are skipped and listed; no object in the store is changed.
    Temporary files of writes that never finished (a process killed during one) are removed
    once older than OPENJIP_STORAGE__TEMP_MAX_AGE_SECONDS.

    Example: openjip index rebuild
    """
    settings = load_settings()
    try:
        store = open_store(settings)
        store.check()
        index = open_index(settings)
    except (StorageError, IndexError_, OSError) as error:
        fail(f"cannot open the store and index: {error}")
    from openjip.ingest import rebuild_index

    try:
        with Progress(
            TextColumn("rebuilding"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err_console,
            transient=True,
            disable=not err_console.is_terminal,
        ) as progress:
            task = progress.add_task("rebuild", total=None)
            report = rebuild_index(
                store,
                index,
                progress=lambda done, total: progress.update(task, completed=done, total=total),
                max_sequence_depth=settings.dicom.max_sequence_depth,
            )
        swept = store.sweep_temporary_files()
    except (StorageError, IndexError_) as error:
        fail(f"rebuild failed: {error}")
    finally:
        index.close()
    console.print(
        f"indexed {report.indexed} of {report.scanned} objects"
        + f", {report.results} analysis results, {report.run_outputs} run outputs"
        + f", {report.studies_in_projects} studies given their projects back"
        + (f", skipped {len(report.skipped)}" if report.skipped else "")
        + (f"; removed {swept} temporary files of unfinished writes" if swept else "")
    )
    for key, reason in report.skipped:
        console.print(f"  [yellow]skipped[/] {escape(key)}: {escape(reason)}")
