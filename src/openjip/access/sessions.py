"""Login sessions of the web service, kept where every process of the site sees them: in the
object store (the local store's files are 0600 under 0700 folders; MinIO in a cluster), so a
restart logs nobody out, several web replicas need no sticky sessions, and Airflow's auth
manager accepts the same session (:mod:`openjip.airflow.auth_login`).

- :class:`SessionStore`: ``sessions/<SHA-256 of the token>.json`` holds who signed in and until
  when. The browser's cookie carries the random token only, and the store never holds the token
  itself: reading the store gives nobody a usable session. Logging out deletes the object; an
  expired one is refused and swept.
- The same store keeps the state of browser logins waiting for the identity provider
  (``logins/...``), so a login that starts at one replica may come back to another.

Each process remembers a session it has read for :data:`CACHE_SECONDS`; a logout reaches the
other processes within that time, the process that served it at once.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from openjip.access.expiring import ExpiringTable
from openjip.access.roles import Principal, principal
from openjip.storage.base import ObjectNotFound, ObjectStore

if TYPE_CHECKING:
    from openjip.access.users import UserStore

StoreOf = ObjectStore | Callable[[], ObjectStore]
"""A store, or how to get it when first needed (a web service starts while its store is down)."""
CACHE_SECONDS = 5.0
SWEEP_SECONDS = 3600.0
"""Expired records are deleted at most this often (when a new one is written)."""
SESSION_COOKIE = "openjip_session"
"""The cookie of a session: the web service sets it, Airflow's login reads it (and sets it)."""
SESSIONS_PREFIX = "sessions/"
LOGINS_PREFIX = "logins/"


@dataclass(frozen=True)
class Session:
    """A logged-in browser: who, whether it is a local user (re-checked on each use), and
    until when (seconds since the epoch)."""

    principal: Principal
    local: bool
    expires: float


class StoredRecords:
    """JSON records under ``prefix`` in the object store, named by the hash of a secret key,
    each with an ``expires`` time; expired ones read as absent."""

    def __init__(self, store: StoreOf, prefix: str) -> None:
        self._store_of = store if callable(store) else lambda: store
        self.prefix = prefix
        self._swept = 0.0
        self._lock = threading.Lock()

    @property
    def store(self) -> ObjectStore:
        return self._store_of()

    def object_key(self, secret: str) -> str:
        return f"{self.prefix}{hashlib.sha256(secret.encode()).hexdigest()}.json"

    def put(self, secret: str, record: dict[str, Any]) -> None:
        self.store.put(self.object_key(secret), json.dumps(record).encode())
        self._sweep_now_and_then()

    def get(self, secret: str) -> dict[str, Any] | None:
        try:
            record: dict[str, Any] = json.loads(self.store.get(self.object_key(secret)))
        except (ObjectNotFound, ValueError):
            return None
        if float(record.get("expires", 0)) <= time.time():
            self.delete(secret)
            return None
        return record

    def delete(self, secret: str) -> None:
        self.store.delete(self.object_key(secret))  # absent already: nothing to do

    def _sweep_now_and_then(self) -> None:
        with self._lock:
            if time.monotonic() - self._swept < SWEEP_SECONDS:
                return
            self._swept = time.monotonic()
        now = time.time()
        for info in list(self.store.list(self.prefix)):
            try:
                if float(json.loads(self.store.get(info.key)).get("expires", 0)) <= now:
                    self.store.delete(info.key)
            except (ObjectNotFound, ValueError):
                continue


class SessionStore:
    """The site's login sessions (see the module docstring)."""

    def __init__(self, store: StoreOf, seconds: float) -> None:
        self.seconds = seconds
        self.records = StoredRecords(store, SESSIONS_PREFIX)
        self._cache: ExpiringTable[Session] = ExpiringTable(CACHE_SECONDS)

    def start(self, who: Principal, *, local: bool) -> str:
        """A new session of ``who``; its token (for the cookie)."""
        token = secrets.token_urlsafe(32)
        self.records.put(
            token,
            {
                "name": who.name,
                "kind": who.kind,
                "roles": sorted(who.roles),
                "projects": list(who.projects),
                "local": local,
                "expires": time.time() + self.seconds,
            },
        )
        return token

    def get(self, token: str) -> Session | None:
        """The live session of ``token``, ``None`` when unknown, ended or expired."""
        cached = self._cache.get(token)
        if cached is not None:
            if cached.expires > time.time():
                return cached
            self._cache.pop(token)
        record = self.records.get(token)
        if record is None:
            return None
        session = Session(
            principal(record["name"], record["kind"], record["roles"], record["projects"]),
            bool(record["local"]),
            float(record["expires"]),
        )
        self._cache.put(session, key=token)
        return session

    def principal(self, token: str, users: UserStore) -> Principal | None:
        """Who the session ``token`` belongs to; the session of a local user no longer in
        ``users`` ends."""
        session = self.get(token)
        if session is None:
            return None
        if session.local and users.get(session.principal.name) is None:
            self.end(token)
            return None
        return session.principal

    def end(self, token: str) -> None:
        """Log the session out, here at once and in every other process within
        :data:`CACHE_SECONDS`."""
        self._cache.pop(token)
        self.records.delete(token)
