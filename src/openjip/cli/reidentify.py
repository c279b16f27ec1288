"""``openjip reidentify``: who a pseudonym is, from the re-identification table of a project that
keeps one (:mod:`openjip.deid.reidentification`); every lookup is audited."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from openjip.cli.environment import console, fail, load_settings

app = typer.Typer()


@app.command()
def reidentify(
    pseudonym: Annotated[str, typer.Argument(help="The pseudonym (Patient ID of the copies).")],
    project: Annotated[str, typer.Option("--project", help="Project whose table to open.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the identities as JSON.")] = False,
) -> None:
    """Print the original Patient ID and name of a pseudonym of a project that keeps a table.

    Only projects whose policy says reidentification: true have a table; the lookup is written
    to the access audit (who, project, pseudonym, whether it was found). Site administrators
    only: it needs the site's de-identification secret.

    Example: openjip reidentify P3A1F09C2B7D4E15 --project research
    """
    from openjip.access import AccessAudit, principal
    from openjip.access.projects import check_project_names
    from openjip.deid.pseudonyms import read_secret
    from openjip.deid.reidentification import ReidentificationTable, table_path

    try:
        (name,) = check_project_names([project])
    except ValueError as error:
        fail(str(error), code=2)
    settings = load_settings()
    policy = settings.deid.projects.get(name)
    if policy is None or not policy.reidentification:
        fail(f"project {name} keeps no re-identification table (its policy does not ask for one)")
    try:
        table = ReidentificationTable(
            table_path(settings.home_dir, name), read_secret(settings.deid_secret_path)
        )
        identities = table.lookup(pseudonym)
    except (OSError, ValueError) as error:
        fail(f"cannot open the re-identification table: {error}")
    audit = AccessAudit(settings.access_audit_path, max_bytes=settings.access.audit_max_bytes)
    audit.record(
        principal("cli", "user", ["admin"]),
        "reidentify",
        "allowed" if identities else "not found",
        surface="cli",
        detail=f"project {name}, pseudonym {pseudonym}",
    )
    if not identities:
        fail(f"pseudonym {pseudonym} is not in the table of project {name}")
    if as_json:
        typer.echo(json.dumps(identities))
        return
    for identity in identities:
        console.print(
            f"{pseudonym}: PatientID {identity['PatientID']}, name {identity['PatientName']}"
        )
