"""The DICOM receiver (DIMSE SCP): C-ECHO and C-STORE into the object store and index,
the series-completion sweep with its hooks, and the receiver's Prometheus metrics."""

from openjip.receiver.hooks import JsonlEventLog, SeriesCompleteHook, read_events
from openjip.receiver.service import ReceiverService
from openjip.receiver.sweeper import CompletionSweeper

__all__ = [
    "CompletionSweeper",
    "JsonlEventLog",
    "ReceiverService",
    "SeriesCompleteHook",
    "read_events",
]
