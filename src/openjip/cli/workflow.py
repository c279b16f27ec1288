"""``openjip workflow``: list, validate and trigger workflows, and list their runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from openjip.airflow.client import AirflowClient, AirflowError, AirflowUnavailable
from openjip.config import Settings, get_settings
from openjip.workflows import SpecInvalid, discover_specs, load_spec, workflow_dirs
from openjip.workflows.spec import SERIES_PARAM
from openjip.workflows.validation import parse_param_text

app = typer.Typer(
    name="workflow",
    help="Workflows: list, validate a spec, trigger a run, list runs.",
    no_args_is_help=True,
)
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

# Exit codes: 1 Airflow failed or is unreachable, 2 invalid input (spec, workflow, param, series).
EXIT_AIRFLOW = 1
EXIT_INVALID = 2


def _fail(message: str, code: int) -> typer.Exit:
    err.print(f"[red]✗[/red] {escape(message)}")
    return typer.Exit(code)


def _client(settings: Settings) -> AirflowClient:
    try:
        return AirflowClient.from_settings(settings)
    except AirflowUnavailable as error:
        raise _fail(f"{error}: is the site running (`openjip site up`)?", EXIT_AIRFLOW) from None


@app.command("list")
def list_workflows(
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list."),
) -> None:
    """List the workflows of this site and the specs that were rejected.

    Example: openjip workflow list --json
    """
    settings = get_settings()
    catalog = discover_specs(workflow_dirs(settings))
    rows: list[dict[str, Any]] = [
        {
            "id": spec.id,
            "version": spec.version,
            "title": spec.title,
            "manual": spec.triggers.manual,
            "on_series_complete": bool(spec.triggers.on_series_complete),
            "path": str(catalog.paths[spec.id]),
        }
        for spec in catalog.specs.values()
    ]
    rejected: list[dict[str, Any]] = [
        {"path": invalid.source, "errors": [str(error) for error in invalid.errors]}
        for invalid in catalog.rejected
    ]
    if as_json:
        out.print_json(json.dumps({"workflows": rows, "rejected": rejected}))
        return
    table = Table("id", "version", "title", "starts", "spec")
    for row in rows:
        starts = ", ".join(name for name in ("manual", "on_series_complete") if row[name])
        table.add_row(row["id"], row["version"], row["title"], starts, row["path"])
    out.print(table)
    for item in rejected:
        err.print(f"[red]✗[/red] rejected {escape(item['path'])}:")
        for line in item["errors"]:
            err.print(f"  {escape(line)}")


@app.command()
def validate(
    path: Path = typer.Argument(..., help="Workflow spec (YAML)."),
) -> None:
    """Check a workflow spec: every error is printed with its path in the document.

    Example: openjip workflow validate dags/workflows/ct-body-mask.yaml
    """
    try:
        spec = load_spec(path)
    except SpecInvalid as invalid:
        err.print(f"[red]✗[/red] {escape(str(path))}: {len(invalid.errors)} error(s)")
        for error in invalid.errors:
            err.print(f"  {escape(str(error))}")
        raise typer.Exit(EXIT_INVALID) from None
    out.print(f"[green]✓[/green] {escape(str(path))}: workflow {spec.id} {spec.version} is valid")


@app.command()
def trigger(
    workflow_id: str = typer.Argument(..., metavar="ID", help="Workflow id."),
    series: list[str] = typer.Option(
        [], "--series", help="SeriesInstanceUID to analyse (repeat for more)."
    ),
    param: list[str] = typer.Option([], "--param", help="Workflow param as NAME=VALUE."),
    run_id: str | None = typer.Option(
        None, "--run-id", help="Name of the run (default: Airflow's)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the run as JSON."),
) -> None:
    """Start a run of a workflow on the given series.

    Example: openjip workflow trigger ct-body-mask --series 1.2.840.1 --param target=lungs
    """
    settings = get_settings()
    catalog = discover_specs(workflow_dirs(settings))
    spec = catalog.specs.get(workflow_id)
    if spec is None:
        known = ", ".join(sorted(catalog.specs)) or "none"
        raise _fail(f"no workflow {workflow_id!r} (known: {known})", EXIT_INVALID)
    if not spec.triggers.manual:
        raise _fail(f"workflow {workflow_id} is not started by hand", EXIT_INVALID)
    conf: dict[str, Any] = {SERIES_PARAM: list(series)}
    for assignment in param:
        name, equals, text = assignment.partition("=")
        if not equals or name not in spec.params:
            known = ", ".join(sorted(spec.params)) or "none"
            raise _fail(f"--param {assignment!r}: expected NAME=VALUE, NAME one of {known}", 2)
        try:
            conf[name] = parse_param_text(spec.params[name], text)
        except ValueError as error:
            raise _fail(f"--param {name}: {error}", EXIT_INVALID) from None
    if series:
        _check_series_known(settings, series)
    elif spec.input.kind == "series":
        raise _fail(f"workflow {workflow_id} needs at least one --series", EXIT_INVALID)
    client = _client(settings)
    try:
        run = client.trigger(workflow_id, run_id, conf)
    except AirflowError as error:
        raise _fail(f"Airflow refused the run: {error}", EXIT_AIRFLOW) from None
    finally:
        client.close()
    if as_json:
        out.print_json(json.dumps(run))
        return
    out.print(
        f"[green]✓[/green] started {workflow_id} run {escape(run['dag_run_id'])}"
        f" — {settings.airflow_url}/dags/{workflow_id}/runs/{run['dag_run_id']}"
    )


def _check_series_known(settings: Settings, series: list[str]) -> None:
    from openjip.index import Query, open_index

    index = open_index(settings)
    try:
        found = {s.SeriesInstanceUID for s in index.find_series(Query(SeriesInstanceUID=series))}
    finally:
        index.close()
    missing = [uid for uid in series if uid not in found]
    if missing:
        raise _fail(f"not in the index: {', '.join(missing)}", EXIT_INVALID)


@app.command()
def runs(
    workflow_id: str = typer.Argument(..., metavar="ID", help="Workflow id."),
    limit: int = typer.Option(20, "--limit", min=1, help="At most this many, newest first."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list."),
) -> None:
    """List the runs of a workflow, newest first, with their state and series.

    Example: openjip workflow runs ct-body-mask --limit 5
    """
    settings = get_settings()
    client = _client(settings)
    try:
        found = client.runs(workflow_id, limit=limit)
    except AirflowError as error:
        code = EXIT_INVALID if error.status == 404 else EXIT_AIRFLOW
        raise _fail(f"{workflow_id}: {error}", code) from None
    finally:
        client.close()
    if as_json:
        out.print_json(json.dumps(found))
        return
    table = Table("run", "state", "started", "ended", "series")
    for run in found:
        table.add_row(
            run["dag_run_id"],
            str(run.get("state")),
            str(run.get("start_date") or ""),
            str(run.get("end_date") or ""),
            ", ".join((run.get("conf") or {}).get(SERIES_PARAM, [])),
        )
    out.print(table)
