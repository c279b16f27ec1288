"""The DICOM receiver (DIMSE SCP): C-ECHO and C-STORE into the object store and index,
the series-completion sweep with its listeners, and the receiver's Prometheus metrics."""

from openjip.receiver.series_complete import JsonlEventLog, SeriesCompleteListener, read_events
from openjip.receiver.service import ReceiverService
from openjip.receiver.sweeper import CompletionSweeper

__all__ = [
    "CompletionSweeper",
    "JsonlEventLog",
    "ReceiverService",
    "SeriesCompleteListener",
    "read_events",
]
