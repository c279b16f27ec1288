"""``openjip site up``: a whole local site in the foreground."""

from __future__ import annotations

import typer

from openjip.cli.environment import configure_logging, load_settings

app = typer.Typer(name="site", help="Run a whole site.", no_args_is_help=True)


@app.command()
def up() -> None:
    """Run a local site in the foreground: Airflow, DICOM receiver, web service; Ctrl-C stops all.

    Ports and paths come from the OPENJIP_ settings (see docs/configuration.md).

    Example: OPENJIP_RECEIVER__PORT=11112 OPENJIP_WEB__PORT=8042 openjip site up
    """
    settings = load_settings()
    configure_logging(settings)
    from openjip.site import local_components, run_site

    raise typer.Exit(run_site(local_components(settings)))
