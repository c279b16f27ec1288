"""The SQLite backend of the metadata index (:class:`SQLiteIndex`): one file, shared by threads
and processes."""

from openjip.index.sqlite.index import SQLiteIndex
from openjip.index.sqlite.schema import (
    INSTANCE_COLUMNS,
    SCHEMA_VERSION,
    SERIES_FIELDS,
    STUDY_FIELDS,
)

__all__ = ["INSTANCE_COLUMNS", "SCHEMA_VERSION", "SERIES_FIELDS", "STUDY_FIELDS", "SQLiteIndex"]
