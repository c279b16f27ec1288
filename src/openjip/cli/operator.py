"""``openjip operator``: scaffold, validate, run and list analysis operators."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from openjip.operators import (
    LoadedOperator,
    ManifestError,
    OperatorNotFound,
    ParamError,
    StepFailed,
    check_folder,
    find_operator,
    load_operator,
    parse_assignments,
    resolve_params,
    run_operator_locally,
    scan_operators,
)
from openjip.operators.scaffold import new_operator
from openjip.sdk import Progress as StepProgress

app = typer.Typer(
    name="operator",
    help="Analysis operators: scaffold, validate, run on a folder of DICOM, list.",
    no_args_is_help=True,
)
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

# Exit codes: 1 the step failed, 2 the operator or the arguments are invalid.
EXIT_FAILED = 1
EXIT_INVALID = 2


def _load_or_exit(where: str) -> LoadedOperator:
    """The operator in folder ``where``, or else the installed one named ``name[@version]``."""
    try:
        if Path(where).is_dir() or "/" in where:
            return load_operator(Path(where))
        return find_operator(where)
    except OperatorNotFound as exc:
        err.print(f"[red]✗[/red] {escape(str(exc))}: give a folder or see `openjip operator list`")
        raise typer.Exit(EXIT_INVALID) from None
    except ManifestError as exc:
        err.print(f"[red]✗[/red] {escape(exc.source)}: invalid operator")
        for issue in exc.issues:
            err.print(f"  {escape(str(issue))}")
        raise typer.Exit(EXIT_INVALID) from None


@app.command()
def new(
    name: str = typer.Argument(..., help="Operator name: lower-case letters, digits, dashes."),
    directory: Path = typer.Option(
        Path("."), "--dir", help="Folder to create the operator in (default: current folder)."
    ),
) -> None:
    """Scaffold a new operator: operator.yaml, main.py, requirements.txt, Dockerfile.

    The result validates and runs as generated; edit main.py to do your analysis.

    Example: openjip operator new lung-volume --dir operators
    """
    try:
        folder = new_operator(name, directory)
    except ValueError as exc:
        err.print(f"[red]✗[/red] {escape(str(exc))}")
        raise typer.Exit(EXIT_INVALID) from None
    except FileExistsError:
        err.print(f"[red]✗[/red] {directory / name} exists already")
        raise typer.Exit(EXIT_INVALID) from None
    except OSError as exc:
        err.print(f"[red]✗[/red] cannot create {directory / name}: {exc.strerror}")
        raise typer.Exit(EXIT_FAILED) from None
    out.print(f"[green]✓[/green] created {folder}")
    out.print(f"  try it: openjip operator run {folder} --input DICOM_DIR --output OUT_DIR")


@app.command()
def validate(
    directory: Path = typer.Argument(..., help="Operator folder (holds operator.yaml)."),
    require_digest: bool = typer.Option(
        False, "--require-digest", help="Also require image@sha256:… (to publish to other sites)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Check an operator folder: manifest against the schema, Dockerfile and entrypoint present.

    Every problem is printed with its path in operator.yaml; exit code 2 when there is any.

    Example: openjip operator validate operators/threshold-segmentation
    """
    try:
        operator = load_operator(directory)
        issues = check_folder(operator, require_digest=require_digest)
    except ManifestError as exc:
        operator, issues = None, exc.issues
    if as_json:
        report = {
            "valid": not issues,
            "operator": operator.ref if operator else None,
            "errors": [{"path": i.path, "message": i.message} for i in issues],
        }
        typer.echo(json.dumps(report, indent=2))
    elif issues:
        err.print(f"[red]✗[/red] {directory}: invalid operator")
        for issue in issues:
            err.print(f"  {escape(str(issue))}")
    elif operator:
        out.print(f"[green]✓[/green] {operator.ref} is valid ({operator.directory})")
    if issues:
        raise typer.Exit(EXIT_INVALID)


@app.command()
def run(
    operator_ref: str = typer.Argument(
        ..., metavar="OPERATOR", help="Operator folder, or name[@version] of an installed one."
    ),
    input_dir: Path = typer.Option(
        ..., "--input", "-i", help="DICOM folder: one subfolder per series, or the files of one."
    ),
    output_dir: Path = typer.Option(..., "--output", "-o", help="Folder for the results."),
    param: list[str] = typer.Option(
        [], "--param", "-p", help="A param as NAME=VALUE (repeatable), typed by the manifest."
    ),
    timeout: float | None = typer.Option(None, "--timeout", min=1, help="Stop after N seconds."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON, no progress."),
) -> None:
    """Run an operator locally on a folder, as a workflow step would, and list its outputs.

    OPERATOR is a folder holding operator.yaml, or the name[@version] of an operator on the
    search path (see `openjip operator list`).

    Example: openjip operator run threshold-segmentation -i ct/ -o seg/ -p target=lungs
    """
    operator = _load_or_exit(operator_ref)
    if not input_dir.is_dir():
        err.print(f"[red]✗[/red] input folder {input_dir} does not exist")
        raise typer.Exit(EXIT_INVALID)
    if output_dir.is_dir() and any(output_dir.iterdir()):
        err.print(f"[red]✗[/red] output folder {output_dir} is not empty: choose a new one")
        raise typer.Exit(EXIT_INVALID)
    try:
        params = resolve_params(operator.manifest, parse_assignments(param))
    except ParamError as exc:
        err.print(f"[red]✗[/red] invalid params for {operator.ref}:")
        for problem in exc.problems:
            err.print(f"  {escape(problem)}")
        raise typer.Exit(EXIT_INVALID) from None
    except ValueError as exc:
        err.print(f"[red]✗[/red] {escape(str(exc))}")
        raise typer.Exit(EXIT_INVALID) from None

    with Progress(
        TextColumn(f"[bold]{escape(operator.ref)}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
        console=err,
        disable=as_json,
    ) as bar:
        task = bar.add_task("starting", total=1.0)

        def on_progress(progress: StepProgress) -> None:
            bar.update(task, completed=progress.fraction, description=escape(progress.message))

        def on_log(stream: str, line: str) -> None:
            if not as_json:
                bar.console.print(f"[dim]{escape(line)}[/dim]", highlight=False)

        try:
            result = run_operator_locally(
                operator,
                input_dir,
                output_dir,
                params,
                timeout=timeout,
                on_log=on_log,
                on_progress=on_progress,
            )
        except StepFailed as exc:
            bar.stop()
            if as_json:
                typer.echo(
                    json.dumps({"ok": False, "operator": operator.ref, "error": exc.message})
                )
            err.print(f"[red]✗[/red] {operator.ref} failed: {escape(exc.message)}")
            raise typer.Exit(EXIT_FAILED) from None
        bar.update(task, completed=1.0)

    if as_json:
        report = {
            "ok": True,
            "operator": result.operator,
            "output_dir": str(result.output_dir),
            "files": [str(f) for f in result.files],
            "duration_seconds": round(result.duration_seconds, 3),
        }
        typer.echo(json.dumps(report, indent=2))
        return
    out.print(
        f"[green]✓[/green] {result.operator} finished in {result.duration_seconds:.1f} s: "
        f"{len(result.files)} file(s) in {result.output_dir}"
    )
    for name in result.files:
        out.print(f"  {name}")


@app.command("list")
def list_operators(
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list."),
) -> None:
    """List the operators on the search path (the repository's operators/, $OPENJIP_HOME/operators).

    Folders whose operator.yaml is invalid are reported on stderr (exit code 2).

    Example: openjip operator list --json
    """
    catalog = scan_operators()
    if as_json:
        rows = [
            {
                "name": op.manifest.name,
                "version": op.manifest.version,
                "description": op.manifest.description,
                "input": op.manifest.input.kind,
                "output": op.manifest.output.kind,
                "image": op.manifest.image,
                "path": str(op.directory),
            }
            for op in catalog.operators
        ]
        typer.echo(json.dumps(rows, indent=2))
    else:
        table = Table()
        table.add_column("operator", no_wrap=True)
        table.add_column("input → output")
        table.add_column("image", overflow="fold")
        table.add_column("description")
        for op in catalog.operators:
            m = op.manifest
            table.add_row(m.ref, f"{m.input.kind} → {m.output.kind}", m.image, m.description)
        out.print(table)
    for problem in catalog.problems:
        err.print(f"[yellow]![/yellow] {escape(problem.source)}: invalid operator")
        for issue in problem.issues:
            err.print(f"  {escape(str(issue))}")
    if catalog.problems:
        raise typer.Exit(EXIT_INVALID)
