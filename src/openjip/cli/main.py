"""The ``openjip`` console script: registers every command group."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="openjip",
    help="openjip: receive, index and analyse medical images at one site of a federation.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.command()
def version() -> None:
    """Print the version of openjip.

    Example: openjip version
    """
    from openjip import __version__

    typer.echo(__version__)


if __name__ == "__main__":
    app()
