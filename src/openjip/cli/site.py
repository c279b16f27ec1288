"""``openjip site up``: a whole local site in the foreground."""

from __future__ import annotations

import typer

from openjip.access.at_rest import protect_data_at_rest
from openjip.cli import site_state
from openjip.cli.environment import configure_logging, console, load_settings

app = typer.Typer(name="site", help="Run a whole site.", no_args_is_help=True)
app.registered_commands += site_state.app.registered_commands  # backup, restore, check


@app.command()
def up() -> None:
    """Run a local site in the foreground: Airflow, DICOM receiver, web service; Ctrl-C stops all.

    Ports and paths come from the OPENJIP_ settings (see docs/configuration.md). The first
    time, a local admin user is created and its password printed once (`openjip user` manages
    users afterwards).

    Example: OPENJIP_RECEIVER__PORT=11112 OPENJIP_WEB__PORT=8042 openjip site up
    """
    settings = load_settings()
    configure_logging(settings)
    protect_data_at_rest(settings)
    from openjip.access import UserError, UserStore
    from openjip.site import local_components, run_site

    try:
        password = UserStore(settings.access_dir).create_first_admin()
    except UserError as error:
        console.print(f"[red]cannot read the site's users:[/] {error}")
        raise typer.Exit(1) from error
    if password is not None:
        console.print(
            f"first admin created: user admin  password {password}  "
            "(shown once; `openjip user` adds and removes users)",
            soft_wrap=True,
            markup=False,
        )
    raise typer.Exit(run_site(local_components(settings)))
