"""The one durable ingest path of openjip (C-STORE, STOW-RS, analysis results) and the
rebuild of the index from the object store.

An instance is validated, written whole and durably to the object store, then indexed; a
caller reports success only after :meth:`Ingestor.ingest_file` / ``ingest_bytes`` returned.
"""

from openjip.ingest.ingestor import Ingestor, IngestResult, InstanceConflict, InvalidInstance
from openjip.ingest.rebuild import RebuildReport, rebuild_index

__all__ = [
    "IngestResult",
    "Ingestor",
    "InstanceConflict",
    "InvalidInstance",
    "RebuildReport",
    "rebuild_index",
]
