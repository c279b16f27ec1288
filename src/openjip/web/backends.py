"""The object store and metadata index an HTTP app works on, opened on first use.

Opening lazily lets the app start (and ``/healthz`` say what is wrong) while a backend is
down; routers reach the backends through ``request.app.state.backends``.
"""

from __future__ import annotations

import threading

from openjip.config import Settings
from openjip.index import MetadataIndex, open_index
from openjip.storage import ObjectStore, open_store


class Backends:
    """The store and index of one site, each opened once, when first asked for."""

    def __init__(
        self,
        settings: Settings,
        *,
        store: ObjectStore | None = None,
        index: MetadataIndex | None = None,
    ) -> None:
        self.settings = settings
        self._store = store
        self._index = index
        self._lock = threading.Lock()

    @property
    def store(self) -> ObjectStore:
        """The object store; raises whatever its backend raises when it cannot be opened."""
        with self._lock:
            if self._store is None:
                self._store = open_store(self.settings)
            return self._store

    @property
    def index(self) -> MetadataIndex:
        """The metadata index; raises whatever its backend raises when it cannot be opened."""
        with self._lock:
            if self._index is None:
                self._index = open_index(self.settings)
            return self._index

    def close(self) -> None:
        """Close the index if it was opened (the store holds nothing to release)."""
        with self._lock:
            if self._index is not None:
                self._index.close()
                self._index = None
