"""A remote object store (S3) behind a durable local receive cache.

``put`` writes the object into the cache (a :class:`LocalObjectStore` on the receiver's volume:
fsynced file and directory, files 0600) and returns; background uploaders send it to the remote
store with parallel PUTs over pooled connections, then remove it from the cache. So an object
is always whole in at least one place: in the cache from its ``put`` until its upload has
returned, in the remote store from then on. Reads look in the cache first, then remotely; a
listing merges both (so ``index rebuild`` finds every object). The key is the same in both
places, so the index needs no change when an object moves.

Upload of a key, by any thread of any process sharing the cache, holds that key's lock (one
of :data:`_LOCK_STRIPES` lock files, ``flock``) and sends the cache file current when it
started. Removing it afterwards is a rename to a claim name (``~up~``, never a key, never
listed): if the claimed file is not the one uploaded, a newer put replaced it meanwhile and it
goes back. A process killed at any point leaves either the cache file (uploaded again later:
S3 PUTs are whole, so a killed upload shows nothing) or a claim, both recovered by
:meth:`resume_uploads`, which every :meth:`check` starts.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import itertools
import logging
import os
import queue
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from openjip.storage.base import ObjectInfo, ObjectNotFound, ObjectStore, StoreUnavailable
from openjip.storage.local import LocalObjectStore

LOGGER = logging.getLogger(__name__)

_LOCK_STRIPES = 64
_CLAIM_MARK = "~up~"
_RETRY_FIRST_S = 0.5
_RETRY_MAX_S = 30.0
_UPLOADER_NICE = 19
_QUIET_S = 1.0
"""Uploads wait (up to ``defer_bytes``) until no put came for this long."""


class CachedObjectStore(ObjectStore):
    """``remote`` with a local write cache in ``cache_dir`` and ``uploaders`` upload threads;
    uploads wait while puts keep coming, until ``defer_bytes`` wait in the cache."""

    def __init__(
        self,
        remote: ObjectStore,
        cache_dir: Path,
        *,
        uploaders: int = 4,
        fsync: bool = True,
        defer_bytes: int = 0,
    ) -> None:
        self.remote = remote
        self.cache = LocalObjectStore(Path(cache_dir) / "objects", fsync=fsync)
        self._locks_dir = Path(cache_dir).absolute() / "locks"
        self._uploaders = max(1, uploaders)
        self._queue: queue.Queue[str] = queue.Queue()
        self._pending = 0
        self._pending_changed = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._start_lock = threading.Lock()
        self._claims = itertools.count()
        self._failures = 0
        self._defer_bytes = defer_bytes
        self._waiting_bytes = 0
        self._last_put = 0.0

    def __repr__(self) -> str:
        return f"CachedObjectStore({self.remote!r}, cache={self.cache.root!s})"

    # -- writing -------------------------------------------------------------------------

    def put(self, key: str, data: bytes | BinaryIO) -> ObjectInfo:
        """Write ``data`` durably into the cache and queue its upload."""
        info = self.cache.put(key, data)
        self._enqueue(key, info.size)
        return info

    def put_file(self, key: str, path: Path, *, move: bool = False) -> ObjectInfo:
        """Store the file into the cache (a rename with ``move`` on one disk), queue its upload."""
        info = self.cache.put_file(key, path, move=move)
        self._enqueue(key, info.size)
        return info

    def delete(self, key: str) -> None:
        """Remove the object from the cache and the remote store."""
        with self._key_lock(key):
            self.cache.delete(key)
            self.remote.delete(key)

    # -- reading -------------------------------------------------------------------------

    def get(self, key: str) -> bytes:
        """The object from the cache, or else from the remote store."""
        try:
            return self.cache.get(key)
        except ObjectNotFound:
            return self.remote.get(key)

    def open(self, key: str) -> BinaryIO:
        """A stream of the cached file, or else of the remote object."""
        try:
            return self.cache.open(key)
        except ObjectNotFound:
            return self.remote.open(key)

    def head(self, key: str) -> ObjectInfo | None:
        """The cached file's description, or else the remote object's."""
        return self.cache.head(key) or self.remote.head(key)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Both places merged in key order; a key in both is described by its cached file."""
        cached = {info.key: info for info in self.cache.list(prefix)}
        remote = [info for info in self.remote.list(prefix) if info.key not in cached]
        yield from sorted([*cached.values(), *remote], key=lambda info: info.key)

    def check(self) -> None:
        """Prove both places usable, then upload what earlier processes left in the cache."""
        self.cache.check()
        self.remote.check()
        self.resume_uploads()

    def sweep_temporary_files(self) -> int:
        """The cache's leftovers of killed writes (a remote PUT leaves none)."""
        return self.cache.sweep_temporary_files()

    # -- uploading -----------------------------------------------------------------------

    def resume_uploads(self) -> int:
        """Queue every object waiting in the cache (claims of killed uploads put back first);
        return how many."""
        self._start()
        found = 0
        for directory, _, names in os.walk(self.cache.root):
            for name in names:
                if _CLAIM_MARK in name:
                    _restore_claim(os.path.join(directory, name))
        for info in self.cache.list():
            self._enqueue(info.key)
            found += 1
        if found:
            LOGGER.info("S3 receive cache: %d objects to upload", found)
        return found

    def wait_uploaded(self, timeout: float | None = None) -> bool:
        """Wait until every queued upload is done; ``False`` when ``timeout`` ran out first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._pending_changed:
            while self._pending:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._pending_changed.wait(left)
        return True

    def _enqueue(self, key: str, size: int = 0) -> None:
        self._start()
        with self._pending_changed:
            self._pending += 1
            if size:
                self._last_put = time.monotonic()
                self._waiting_bytes += size
        self._queue.put(key)

    def _wait_for_quiet(self) -> None:
        """While puts keep coming and less than ``defer_bytes`` wait, let receiving go first."""
        while self._waiting_bytes < self._defer_bytes:
            quiet_for = time.monotonic() - self._last_put
            if quiet_for >= _QUIET_S:
                return
            time.sleep(_QUIET_S - quiet_for)

    def _start(self) -> None:
        with self._start_lock:
            if self._threads:
                return
            self._locks_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            for number in range(self._uploaders):
                thread = threading.Thread(
                    target=self._upload_loop, name=f"s3-upload-{number}", daemon=True
                )
                thread.start()
                self._threads.append(thread)

    def _upload_loop(self) -> None:
        # Uploads yield the CPU to receiving: on a busy machine they wait for idle time, and
        # acknowledged instances wait safely in the cache meanwhile.
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), _UPLOADER_NICE)
        while True:
            key = self._queue.get()
            self._wait_for_quiet()
            try:
                size = self._upload(key)
            # The thread outlives any failure; the file stays in the cache and is tried again.
            except Exception as error:  # noqa: BLE001
                self._failures += 1
                delay = min(_RETRY_MAX_S, _RETRY_FIRST_S * 2 ** min(self._failures, 6))
                LOGGER.warning("upload of %s failed, again in %.1f s: %s", key, delay, error)
                timer = threading.Timer(delay, self._queue.put, (key,))
                timer.daemon = True
                timer.start()
                continue
            self._failures = 0
            with self._pending_changed:
                self._pending -= 1
                self._waiting_bytes = max(0, self._waiting_bytes - size)
                self._pending_changed.notify_all()

    def _upload(self, key: str) -> int:
        """Send the cached file of ``key`` (if still there), remove it from the cache; return
        its size."""
        with self._key_lock(key):
            try:
                stream = self.cache.open(key)
            except ObjectNotFound:
                return 0  # uploaded by another uploader meanwhile, or deleted
            with stream:
                uploaded = os.fstat(stream.fileno())
                self.remote.put(key, stream)
            path = os.path.join(self.cache.root, key)
            claim = f"{os.path.dirname(path)}/.{os.path.basename(path)}{self._claim_suffix()}"
            os.rename(path, claim)
            claimed = os.stat(claim)
            if (claimed.st_dev, claimed.st_ino) == (uploaded.st_dev, uploaded.st_ino):
                os.unlink(claim)
                self.cache.prune(key)
            else:  # a newer put replaced the file while it was sent; its own upload follows
                _restore_claim(claim)
            return uploaded.st_size

    def _claim_suffix(self) -> str:
        return f"{_CLAIM_MARK}{os.getpid()}-{next(self._claims)}"

    @contextlib.contextmanager
    def _key_lock(self, key: str) -> Iterator[None]:
        """Hold the lock of ``key`` (shared by every process using this cache)."""
        stripe = zlib.crc32(key.encode()) % _LOCK_STRIPES
        try:
            fd = os.open(self._locks_dir / f"{stripe:02d}", os.O_RDWR | os.O_CREAT, 0o600)
        except FileNotFoundError:
            self._locks_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self._locks_dir / f"{stripe:02d}", os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as error:
            raise StoreUnavailable(f"receive cache {self._locks_dir}: {error.strerror}") from error
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock


def _restore_claim(claim: str) -> None:
    """Put a claimed cache file back under its key unless a newer file took the key."""
    directory, name = os.path.split(claim)
    target = os.path.join(directory, name[1:].split(_CLAIM_MARK, 1)[0])
    try:
        os.link(claim, target)
    except OSError as error:
        if error.errno != errno.EEXIST:
            raise
    os.unlink(claim)
