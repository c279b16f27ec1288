""":class:`ExpiringTable`: values under random keys that a process forgets after a while (the
caches of sessions, of project markers written, of a step's inputs)."""

from __future__ import annotations

import secrets
import threading
import time
from typing import Generic, TypeVar

Value = TypeVar("Value")
MAX_ENTRIES = 100_000


class ExpiringTable(Generic[Value]):
    """Values under random keys, each forgotten ``seconds`` after it was put (in memory)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._entries: dict[str, tuple[float, Value]] = {}
        self._lock = threading.Lock()

    def put(self, value: Value, key: str | None = None) -> str:
        """Keep ``value`` under ``key`` (a fresh random one by default); return the key."""
        key = key or secrets.token_urlsafe(32)
        now = time.monotonic()
        with self._lock:
            if len(self._entries) >= MAX_ENTRIES:
                self._entries = {k: v for k, v in self._entries.items() if v[0] > now}
                while len(self._entries) >= MAX_ENTRIES:
                    self._entries.pop(next(iter(self._entries)))
            self._entries[key] = (now + self.seconds, value)
        return key

    def get(self, key: str) -> Value | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry[0] <= time.monotonic():
                del self._entries[key]
                return None
            return entry[1]

    def pop(self, key: str) -> Value | None:
        value = self.get(key)
        with self._lock:
            self._entries.pop(key, None)
        return value
