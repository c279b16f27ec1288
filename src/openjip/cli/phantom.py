"""``openjip phantom``: write synthetic chest CT series to a folder."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

app = typer.Typer()


@app.command()
def phantom(
    out_dir: Path = typer.Argument(..., help="Folder to write into (created if missing)."),
    series: int = typer.Option(1, "--series", min=1, help="How many series."),
    slices: int = typer.Option(100, "--slices", min=1, help="Slices per series."),
    size: int = typer.Option(512, "--size", min=16, max=4096, help="Rows and columns."),
    series_per_study: int = typer.Option(
        1, "--series-per-study", min=1, help="Series in each study (same patient, new noise)."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the first study; same seed, same data."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary, no progress bar."),
) -> None:
    """Write synthetic chest CT series (body, lungs with a nodule, heart, liver, bone in HU).

    Files go to OUT_DIR/<PatientID>/<series number>/CT00001.dcm, ...
    The same arguments give the same instances, UIDs included.

    Example: openjip phantom /tmp/ct --series 4 --slices 100
    """
    from openjip.phantom import write_ct_studies

    total = series * slices
    with Progress(
        TextColumn("writing phantom CT"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        disable=as_json,
    ) as bar:
        task = bar.add_task("write", total=total)
        try:
            paths = write_ct_studies(
                out_dir,
                series=series,
                series_per_study=series_per_study,
                slices=slices,
                rows=size,
                columns=size,
                seed=seed,
                progress=lambda _path: bar.advance(task),
            )
        except OSError as error:
            typer.echo(f"cannot write the phantom to {out_dir}: {error}", err=True)
            raise typer.Exit(1) from error
    size_bytes = sum(path.stat().st_size for path in paths)
    if as_json:
        summary = {"out_dir": str(out_dir), "series": series, "instances": len(paths)}
        typer.echo(json.dumps({**summary, "bytes": size_bytes}))
    else:
        typer.echo(
            f"{len(paths)} instances in {series} series, {size_bytes / 2**20:.1f} MiB in {out_dir}"
        )
