"""``openjip receiver`` and ``openjip web``: one service of a site in the foreground, built by
the site's one assembly (:mod:`openjip.site.components`), as the chart's containers run them."""

from __future__ import annotations

from typing import Annotated

import typer

from openjip.access.at_rest import protect_data_at_rest
from openjip.cli.environment import configure_logging, load_settings

app = typer.Typer()

Host = Annotated[str | None, typer.Option(help="Address to bind (default from settings).")]
Port = Annotated[
    int | None,
    typer.Option(min=0, max=65535, help="Port to bind, 0 for a free one (default from settings)."),
]


@app.command()
def receiver(host: Host = None, port: Port = None) -> None:
    """Run the DICOM receiver (C-ECHO, C-STORE) in the foreground; Ctrl-C stops it.

    With Airflow on (OPENJIP_AIRFLOW__ENABLED, the default), completed series start the
    workflows whose series-arrival rule they match.

    Example: openjip receiver --host 127.0.0.1 --port 11112
    """
    settings = load_settings()
    settings.receiver.host = host or settings.receiver.host
    settings.receiver.port = settings.receiver.port if port is None else port
    configure_logging(settings)
    protect_data_at_rest(settings)
    from openjip.site import receiver_components, run_site

    raise typer.Exit(run_site(receiver_components(settings)))


@app.command()
def web(host: Host = None, port: Port = None) -> None:
    """Run the web service (/healthz, /metrics, DICOMweb) in the foreground; Ctrl-C stops it.

    Example: openjip web --port 8042
    """
    settings = load_settings()
    settings.web.host = host or settings.web.host
    settings.web.port = settings.web.port if port is None else port
    configure_logging(settings)
    protect_data_at_rest(settings)
    from openjip.site import run_site, web_components

    raise typer.Exit(run_site(web_components(settings)))
