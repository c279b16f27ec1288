"""``openjip user add|list|remove``: the site's own users (local mode, no identity provider)."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from openjip.cli.environment import console, fail, load_settings

if TYPE_CHECKING:
    from openjip.access import UserStore

app = typer.Typer(
    name="user",
    help="Add, list and remove the site's local users (HTTP Basic and /login).",
    no_args_is_help=True,
)

ROLES = ("admin", "researcher", "viewer", "uploader")


def _store() -> UserStore:
    from openjip.access import UserStore

    return UserStore(load_settings().access_dir)


@app.command()
def add(
    name: Annotated[str, typer.Argument(help="User name (letters, digits, . _ @ -).")],
    role: Annotated[str, typer.Option("--role", help="admin, researcher, viewer or uploader.")],
    project: Annotated[
        list[str] | None,
        typer.Option("--project", help="Project the user works in (repeatable; default: default)."),
    ] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
) -> None:
    """Add a user with a role on projects; the password comes from standard input.

    Example: openjip user add alice --role viewer --project p1 --password-stdin < pw.txt
    """
    from openjip.access import UserError

    if role not in ROLES:
        fail(f"unknown role {role!r}; roles: {', '.join(ROLES)}", code=2)
    if not password_stdin:
        fail("give the password on standard input with --password-stdin", code=2)
    password = sys.stdin.readline().rstrip("\r\n")
    try:
        user = _store().add(name, password, role, project or [])
    except UserError as error:
        fail(str(error))
    console.print(f"added {user.name} ({user.role}, projects {', '.join(user.projects)})")


@app.command("list")
def list_users(
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list.")] = False,
) -> None:
    """List the users with their roles and projects (never their passwords).

    Example: openjip user list --json
    """
    from openjip.access import UserError

    try:
        users = _store().list()
    except UserError as error:
        fail(str(error))
    if as_json:
        typer.echo(json.dumps([user.to_dict() for user in users]))
        return
    table = Table("name", "role", "projects")
    for user in users:
        table.add_row(user.name, user.role.value, ", ".join(user.projects))
    console.print(table)


@app.command()
def remove(name: Annotated[str, typer.Argument(help="User to remove.")]) -> None:
    """Remove a user; its sessions end at their next request.

    Example: openjip user remove alice
    """
    from openjip.access import UserError

    try:
        _store().remove(name)
    except UserError as error:
        fail(str(error))
    console.print(f"removed {name}")
