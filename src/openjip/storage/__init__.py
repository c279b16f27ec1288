"""Object storage: the :class:`ObjectStore` interface and its backends (local directory, S3).

``open_store(settings)`` returns the backend the settings choose; nothing else in openjip
needs to know which one it is.
"""

from openjip.storage.base import (
    InvalidKey,
    ObjectInfo,
    ObjectNotFound,
    ObjectStore,
    StorageError,
    StoreUnavailable,
    check_key,
)
from openjip.storage.factory import open_store

__all__ = [
    "InvalidKey",
    "ObjectInfo",
    "ObjectNotFound",
    "ObjectStore",
    "StorageError",
    "StoreUnavailable",
    "check_key",
    "open_store",
]
