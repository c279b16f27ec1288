"""The ``openjip`` console script: every command, each loaded only when it runs.

A command's module (and what it imports: pydicom, pynetdicom, httpx, federation, Airflow code)
is imported when that command is invoked or asked for its own ``--help``; ``openjip --help``
lists the commands from :data:`COMMANDS` without importing any of them, so that the console
script answers at once. Help is click's plain text: Typer's rich help formatter alone imports
rich's Markdown, syntax highlighting and traceback modules (Pygments, markdown-it), which took
longer than the rest of ``openjip --help`` together.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import typer
from typer.core import TyperCommand, TyperGroup

if TYPE_CHECKING:
    # Typer bundles its own click; these are the classes its groups deal in.
    from click import Command, Context


@dataclass(frozen=True)
class LazyCommand:
    """Where a top-level command lives, and the one-line help ``openjip --help`` shows."""

    module: str
    """Module under ``openjip.cli`` whose ``app`` holds the command."""
    summary: str
    """The first line of the command's help (a test keeps the two equal)."""


COMMANDS: dict[str, LazyCommand] = {
    "phantom": LazyCommand(
        "phantom",
        "Write synthetic chest CT series (body, lungs with a nodule, heart, liver, bone in HU).",
    ),
    "site": LazyCommand("site", "Run a whole site."),
    "receiver": LazyCommand(
        "services", "Run the DICOM receiver (C-ECHO, C-STORE) in the foreground; Ctrl-C stops it."
    ),
    "web": LazyCommand(
        "services",
        "Run the web service (/healthz, /metrics, DICOMweb) in the foreground; Ctrl-C stops it.",
    ),
    "send": LazyCommand("send", "Send DICOM files and folders to a DICOM node with C-STORE."),
    "query": LazyCommand("query", "Search the index for studies, series or instances."),
    "retrieve": LazyCommand(
        "retrieve",
        "Write every instance of a study (or of some of its series) to a folder, byte for byte"
        " as the site stored it.",
    ),
    "index": LazyCommand("index", "Maintain the metadata index."),
    "federation": LazyCommand(
        "federation", "Exchange signed workflow specs with trusted peer sites (never images)."
    ),
    "operator": LazyCommand(
        "operator", "Analysis operators: scaffold, validate, run on a folder of DICOM, list."
    ),
    "workflow": LazyCommand(
        "workflow", "Workflows: list, validate a spec, trigger a run, list runs."
    ),
    "user": LazyCommand(
        "user", "Add, list and remove the site's local users (HTTP Basic and /login)."
    ),
    "project": LazyCommand(
        "project", "Assign studies to projects (who may see them follows from the projects)."
    ),
    "deidentify": LazyCommand(
        "deidentify",
        "De-identify DICOM files with the PS3.15 Basic Profile and its options, into a folder.",
    ),
    "reidentify": LazyCommand(
        "reidentify",
        "Print the original Patient ID and name of a pseudonym of a project that keeps a table.",
    ),
    "audit": LazyCommand(
        "audit",
        "Print the access audit log, oldest first: time, who (user or AE), action, study, result.",
    ),
}


def load_command(name: str) -> Command:
    """Import the module of a command of :data:`COMMANDS` and build the command from it."""
    sub: typer.Typer = importlib.import_module(f"openjip.cli.{COMMANDS[name].module}").app
    sub.rich_markup_mode = None  # plain help, as the top level's (see above)
    if sub.info.name:  # a command group, e.g. ``openjip query ...``
        return typer.main.get_group(sub)
    for info in sub.registered_commands:  # commands of their own, e.g. ``openjip send``
        command = typer.main.get_command_from_info(
            info, pretty_exceptions_short=sub.pretty_exceptions_short, rich_markup_mode=None
        )
        if command.name == name:
            return command
    raise LookupError(f"openjip.cli.{COMMANDS[name].module} has no command {name!r}")


class LazyCommands(TyperGroup):
    """The top-level group: a command of :data:`COMMANDS` is imported when it is invoked;
    listing the commands (``openjip --help``) takes their summaries instead."""

    def list_commands(self, ctx: Context) -> list[str]:
        return [*super().list_commands(ctx), *COMMANDS]

    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        if cmd_name in COMMANDS:
            return TyperCommand(cmd_name, help=COMMANDS[cmd_name].summary)
        return super().get_command(ctx, cmd_name)

    def resolve_command(
        self, ctx: Context, args: list[str]
    ) -> tuple[str | None, Command | None, list[str]]:
        name, command, rest = super().resolve_command(ctx, args)
        if name in COMMANDS:
            command = load_command(name)
        return name, command, rest


app = typer.Typer(
    name="openjip",
    cls=LazyCommands,
    help="openjip: receive, index and analyse medical images at one site of a federation.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@app.callback()
def openjip() -> None:
    """openjip: receive, index and analyse medical images at one site of a federation."""


@app.command()
def version() -> None:
    """Print the version of openjip.

    Example: openjip version
    """
    from openjip import __version__

    typer.echo(__version__)


if __name__ == "__main__":
    app()
