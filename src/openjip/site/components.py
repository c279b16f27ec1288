"""The components of a local site and the adapters that make services site components."""

from __future__ import annotations

from openjip.config import Settings
from openjip.site.runner import SiteComponent


class ReceiverComponent:
    """The DICOM receiver (:class:`openjip.receiver.ReceiverService`) as a site component."""

    name = "receiver"

    def __init__(self, settings: Settings) -> None:
        from openjip.receiver import ReceiverService

        self.settings = settings
        self.service = ReceiverService(settings)
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
    """What ``openjip site up`` runs: the receiver and the web service."""
    from openjip.web import WebService

    return [ReceiverComponent(settings), WebService(settings)]
