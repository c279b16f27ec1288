"""The components of a local site and the adapters that make services site components."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from openjip.config import Settings
from openjip.site.runner import SiteComponent

if TYPE_CHECKING:
    from openjip.receiver import SeriesCompleteHook


class ReceiverComponent:
    """The DICOM receiver (:class:`openjip.receiver.ReceiverService`) as a site component."""

    name = "receiver"

    def __init__(self, settings: Settings, hooks: Sequence[SeriesCompleteHook] = ()) -> None:
        from openjip.receiver import ReceiverService

        self.settings = settings
        self.service = ReceiverService(settings, hooks=hooks)
        self._started = False

    def start(self) -> None:
        """Start listening for associations."""
        self.service.start()
        self._started = True

    def stop(self) -> None:
        """Stop accepting associations and finish the open ones."""
        if self._started:
            self.service.stop()
            self._started = False

    def endpoints(self) -> list[str]:
        """The DICOM address and AE title."""
        host, port = self.service.address
        return [f"DICOM      {host}:{port}  AE {self.settings.receiver.ae_title}"]


def local_components(settings: Settings) -> list[SiteComponent]:
    """What ``openjip site up`` runs: Airflow, the workflow triggers, the receiver (whose
    completed series start matching workflows) and the web service."""
    from openjip.web import WebService

    if not settings.airflow.enabled:
        return [ReceiverComponent(settings), WebService(settings)]
    from openjip.airflow.local import AirflowComponent
    from openjip.airflow.triggers import SeriesTriggerHook

    triggers = SeriesTriggerHook(settings)
    return [
        AirflowComponent(settings),
        triggers,
        ReceiverComponent(settings, hooks=[triggers]),
        WebService(settings),
    ]
