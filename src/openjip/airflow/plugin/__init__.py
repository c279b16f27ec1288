"""The openjip Airflow plugin: the clinician's path inside Airflow's UI, as a thin face over the
web service. An **Images** entry in the navigation (the web service's Images page: search,
select, run a workflow on the selection) and an **Open in viewer** tab on every run and task
instance (the run's result over its source study in OHIF). Airflow finds the plugin through the
``airflow.plugins`` entry point; the links point at ``settings.web_url``.
"""

from __future__ import annotations

from typing import Any

from airflow.plugins_manager import AirflowPlugin

from openjip.config import Settings, get_settings

IMAGES_PATH = "/images/"
RUN_VIEWER_PATH = "/images/runs/{DAG_ID}/{RUN_ID}/viewer"
"""Airflow fills in ``{DAG_ID}`` and ``{RUN_ID}``; the web service redirects to the viewer."""


def plugin_views(settings: Settings) -> list[dict[str, Any]]:
    """The plugin's pages, each shown in an iframe of Airflow's UI at ``/plugin/<url_route>``."""
    web = settings.web_url
    return [
        {
            "name": "Images",
            "href": web + IMAGES_PATH,
            "destination": "nav",
            "url_route": "openjip-images",
        },
        {
            "name": "Open in viewer",
            "href": web + RUN_VIEWER_PATH,
            "destination": "dag_run",
            "url_route": "openjip-run-viewer",
        },
        {
            "name": "Open in viewer",
            "href": web + RUN_VIEWER_PATH,
            "destination": "task_instance",
            "url_route": "openjip-task-viewer",
        },
    ]


class OpenjipPlugin(AirflowPlugin):
    """Images page and Open in viewer links of the site's web service."""

    name = "openjip"
    external_views = plugin_views(get_settings())
