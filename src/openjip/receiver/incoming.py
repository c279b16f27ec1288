"""Where received datasets wait to be stored: each process's *incoming* directory and the
temp files in it.

The directory lies on the object store's filesystem, so storing is a rename, not a copy.
A temp file outlives its C-STORE only if the process dies; the next start of the receiver
removes what dead processes left behind.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

from openjip.config import Settings

LOGGER = logging.getLogger(__name__)


def incoming_root(settings: Settings) -> Path:
    """Where received datasets are written before they are stored.

    For the local store this is inside its root (same filesystem, so storing is a rename;
    the ``~`` keeps it out of every listing); otherwise under ``OPENJIP_HOME``.
    """
    if settings.storage.backend == "local":
        return settings.storage_path / "~incoming"
    return settings.home_dir / "incoming"


def process_incoming_dir(settings: Settings) -> Path:
    """This process's own incoming directory; leftovers of dead processes are removed."""
    root = incoming_root(settings)
    root.mkdir(parents=True, exist_ok=True)
    for entry in root.iterdir():
        if entry.name.isdigit() and not _alive(int(entry.name)):
            shutil.rmtree(entry, ignore_errors=True)
    directory = root / str(os.getpid())
    directory.mkdir(exist_ok=True)
    return directory


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class IncomingFile:
    """A temp file a received dataset is written into; write errors are kept, not raised,
    so the association survives and the C-STORE gets a proper failure status."""

    def __init__(self, directory: Path) -> None:
        self.error: OSError | None = None
        self._fd: int | None = None
        self.name = ""
        try:
            self._fd, self.name = _create_temp(directory)
        except OSError as exc:  # store gone, read-only or full: the C-STORE gets 0xA700
            self.error = exc

    @property
    def path(self) -> Path:
        """Where the file is (an empty path when it could not be created)."""
        return Path(self.name)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Write all of ``data`` unless an earlier write failed."""
        if self.error is not None or self._fd is None:
            return
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError as exc:
            self.error = exc

    def close(self) -> None:
        """Close the file (idempotent)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def remove(self) -> None:
        """Close and delete the file unless it was stored (moved away) already."""
        self.close()
        if self.name:
            try:
                os.unlink(self.name)
            except FileNotFoundError:
                pass
            except OSError as exc:  # swept at the next start (process_incoming_dir)
                LOGGER.warning("cannot remove %s: %s", self.name, exc)


def _create_temp(directory: Path) -> tuple[int, str]:
    try:
        return tempfile.mkstemp(suffix=".dcm", dir=directory)
    except FileNotFoundError:
        # The directory went away (store remounted, cleaned up): make it again once.
        directory.mkdir(parents=True, exist_ok=True)
        return tempfile.mkstemp(suffix=".dcm", dir=directory)
