"""The one assembly of a site's services: each is built from settings alone, the same way
whoever starts it (``openjip site up``, ``openjip receiver``, ``openjip web``, the chart's
containers, which run those commands).

The receiver always comes with what its completed series feed: when the site has Airflow
(``airflow.enabled``), :class:`~openjip.airflow.series_arrival.SeriesArrivalRuns` listens to the
completion sweep and starts matching workflows through Airflow's REST API.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from openjip.config import Settings
from openjip.site.runner import SiteComponent

if TYPE_CHECKING:
    from openjip.receiver import SeriesCompleteListener


class ReceiverComponent:
    """The DICOM receiver (:class:`openjip.receiver.ReceiverService`) as a site component."""

    name = "receiver"

    def __init__(
        self, settings: Settings, listeners: Sequence[SeriesCompleteListener] = ()
    ) -> None:
        from openjip.receiver import ReceiverService

        self.settings = settings
        self.service = ReceiverService(settings, listeners=listeners)
        self._started = False

    def start(self) -> None:
        """Start listening for associations (the index is open, so migrated: its migrations
        go into the site's migration log)."""
        self.service.start()
        self._started = True
        if self.settings.index.backend == "sqlite":
            from openjip.state.inventory import record_index_migrations

            record_index_migrations(self.settings.home_dir, self.settings.index_path)

    def stop(self) -> None:
        """Stop accepting associations and finish the open ones."""
        if self._started:
            self.service.stop()
            self._started = False

    def endpoints(self) -> list[str]:
        """The DICOM address and AE title."""
        host, port = self.service.address
        return [f"DICOM      {host}:{port}  AE {self.settings.receiver.ae_title}"]


def receiver_components(settings: Settings) -> list[SiteComponent]:
    """The receiver and the series-arrival runs it feeds (when the site has Airflow)."""
    if not settings.airflow.enabled:
        return [ReceiverComponent(settings)]
    from openjip.airflow.series_arrival import SeriesArrivalRuns

    runs = SeriesArrivalRuns(settings)
    return [runs, ReceiverComponent(settings, listeners=[runs])]


def web_components(settings: Settings) -> list[SiteComponent]:
    """The web service (DICOMweb, viewer, /healthz, /metrics)."""
    from openjip.web import WebService

    return [WebService(settings)]


def local_components(settings: Settings) -> list[SiteComponent]:
    """What ``openjip site up`` runs: a local Airflow (when enabled), the receiver with its
    series-arrival runs, and the web service."""
    components: list[SiteComponent] = []
    if settings.airflow.enabled:
        from openjip.airflow.local import AirflowComponent

        components.append(AirflowComponent(settings))
    return [*components, *receiver_components(settings), *web_components(settings)]
