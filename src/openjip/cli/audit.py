"""``openjip audit``: read the access audit (who touched which study, how, with what result)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from openjip.cli.environment import console, fail, load_settings

app = typer.Typer()


@app.command()
def audit(
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object per line.")
    ] = False,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="Only the newest N entries.")
    ] = None,
    rotated: Annotated[
        bool, typer.Option("--rotated", help="Include the rotated old files.")
    ] = False,
) -> None:
    """Print the access audit log, oldest first: time, who (user or AE), action, study, result.

    Example: openjip audit --limit 20
    """
    from openjip.access import AccessAudit

    settings = load_settings()
    log = AccessAudit(settings.access_audit_path)
    try:
        entries = list(log.entries(with_rotated=rotated))
    except (OSError, ValueError) as error:
        fail(f"cannot read {log.path}: {error}")
    if limit is not None:
        entries = entries[-limit:]
    if as_json:
        for entry in entries:
            typer.echo(json.dumps(entry, ensure_ascii=False))
        return
    table = Table("time", "who", "kind", "action", "study", "result", "detail")
    for entry in entries:
        table.add_row(
            *(str(entry.get(key, "")) for key in ("time", "who", "kind", "action", "study")),
            str(entry.get("result", "")),
            str(entry.get("detail", "")),
        )
    console.print(table)
