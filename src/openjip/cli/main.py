"""The ``openjip`` console script: registers every command group."""

from __future__ import annotations

import typer

from openjip.cli import (
    audit,
    federation,
    index,
    operator,
    phantom,
    query,
    retrieve,
    send,
    services,
    site,
    user,
    workflow,
)

app = typer.Typer(
    name="openjip",
    help="openjip: receive, index and analyse medical images at one site of a federation.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(phantom.app)
app.add_typer(site.app)
app.add_typer(services.app)
app.add_typer(send.app)
app.add_typer(query.app)
app.add_typer(retrieve.app)
app.add_typer(index.app)
app.add_typer(federation.app)
app.add_typer(operator.app)
app.add_typer(workflow.app)
app.add_typer(user.app)
app.add_typer(audit.app)


@app.command()
def version() -> None:
    """Print the version of openjip.

    Example: openjip version
    """
    from openjip import __version__

    typer.echo(__version__)


if __name__ == "__main__":
    app()
