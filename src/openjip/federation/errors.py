"""The errors of the federation package; each message is meant for the person at the site."""


class FederationError(Exception):
    """A federation operation failed; the message says why and what to do."""


class BundleRejected(FederationError):
    """A pulled bundle failed verification; ``reason`` is a short code for the audit log."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
