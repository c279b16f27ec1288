"""``UserStore``: the site's own users (local mode), kept in ``$OPENJIP_HOME/access/users.json``.

Passwords are hashed with argon2id (argon2-cffi, memory-hard); the file and its directory are
created 0600/0700 from the start and replaced atomically, under a lock, so the CLI and a running
service can share it. A successful verification is remembered for a minute (keyed by a keyed
hash of the credentials, never the password), so HTTP Basic does not pay ~50 ms of argon2 on
every request; changing the file forgets everything remembered.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import os
import re
import secrets
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from openjip.access.files import create_private_dir, write_private_file
from openjip.access.projects import check_project_names
from openjip.access.roles import Principal, Role, principal
from openjip.state.versions import StateTooNew, ensure_store

USERS_FILE = "users.json"
VERIFIED_SECONDS = 60.0
MIN_PASSWORD_LENGTH = 8
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


class UserError(ValueError):
    """A user that cannot be added or removed; the message says why."""


@dataclass(frozen=True)
class User:
    """One local user as listed (no password hash)."""

    name: str
    role: Role
    projects: tuple[str, ...]
    created_at: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "role": str(self.role),
            "projects": list(self.projects),
            "created_at": self.created_at,
        }

    def principal(self) -> Principal:
        return principal(self.name, "user", [self.role], self.projects)


def _hasher() -> Any:
    from argon2 import PasswordHasher

    return PasswordHasher()  # argon2id, RFC 9106 low-memory profile (64 MiB, t=3, p=4)


class UserStore:
    """Add, list, remove and verify the local users of one site."""

    def __init__(self, directory: Path) -> None:
        try:  # the users of a newer openjip are refused before anything reads or writes them
            ensure_store(directory.parent, "users")
        except StateTooNew as error:
            raise UserError(str(error)) from error
        self.directory = directory
        self.path = directory / USERS_FILE
        self._hasher = _hasher()
        self._pepper = secrets.token_bytes(32)
        self._verified: dict[bytes, tuple[float, Principal]] = {}
        self._loaded: tuple[tuple[int, int, int], dict[str, dict[str, Any]]] | None = None
        self._lock = threading.Lock()
        self._decoy = ""

    def add(self, name: str, password: str, role: Role | str, projects: Iterable[str] = ()) -> User:
        """Add a user; :class:`UserError` for a bad name, a short password or a taken name."""
        if not _NAME.match(name):
            raise UserError(
                f"user name {name!r}: 1-64 letters, digits, '.', '_', '@' or '-', "
                "starting with a letter or digit"
            )
        if len(password) < MIN_PASSWORD_LENGTH:
            raise UserError(
                f"password of {name!r} is shorter than {MIN_PASSWORD_LENGTH} characters"
            )
        try:
            role = Role(role)
        except ValueError:
            raise UserError(
                f"unknown role {role!r}; roles: {', '.join(r.value for r in Role)}"
            ) from None
        try:
            kept_projects = tuple(check_project_names(projects)) or ("default",)
        except ValueError as error:
            raise UserError(str(error)) from None
        entry = {
            "hash": self._hasher.hash(password),
            "role": role.value,
            "projects": list(kept_projects),
            "created_at": round(time.time(), 3),
        }
        with self._editing() as users:
            if name in users:
                raise UserError(f"user {name!r} exists; remove it first")
            users[name] = entry
        return User(name, role, kept_projects, entry["created_at"])

    def create_first_admin(self, name: str = "admin") -> str | None:
        """When the site has no user yet, add admin ``name`` with a random password and
        return that password (to be shown once); ``None`` when users exist."""
        if self._users():
            return None
        password = secrets.token_urlsafe(18)
        try:
            self.add(name, password, Role.ADMIN)
        except UserError:
            return None  # another process created users in between
        return password

    def remove(self, name: str) -> None:
        """Remove a user; :class:`UserError` when there is none of that name."""
        with self._editing() as users:
            if users.pop(name, None) is None:
                raise UserError(f"no user {name!r}")

    def list(self) -> list[User]:
        """Every user, by name."""
        return [_user(name, entry) for name, entry in sorted(self._users().items())]

    def get(self, name: str) -> User | None:
        entry = self._users().get(name)
        return _user(name, entry) if entry else None

    def verify(self, name: str, password: str) -> Principal | None:
        """The user's principal when ``password`` is theirs, else ``None``."""
        users = self._users()
        key = hmac.new(self._pepper, f"{name}\0{password}".encode(), hashlib.sha256).digest()
        now = time.monotonic()
        with self._lock:
            remembered = self._verified.get(key)
        if remembered is not None and remembered[0] > now and name in users:
            return remembered[1]
        entry = users.get(name)
        if entry is None and not self._decoy:
            # Unknown names are checked against a hash too, so timing does not tell which exist.
            self._decoy = self._hasher.hash(secrets.token_hex(16))
        matches = self._password_matches(entry["hash"] if entry else self._decoy, password)
        if entry is None or not matches:
            return None
        found = _user(name, entry).principal()
        with self._lock:
            self._verified[key] = (now + VERIFIED_SECONDS, found)
        return found

    def _password_matches(self, stored_hash: str, password: str) -> bool:
        from argon2.exceptions import InvalidHashError, VerificationError

        try:
            return bool(self._hasher.verify(stored_hash, password))
        except (VerificationError, InvalidHashError):
            return False

    def _users(self) -> dict[str, dict[str, Any]]:
        """The users in the file, re-read only when the file changed."""
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return {}
        signature = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        with self._lock:
            if self._loaded is not None and self._loaded[0] == signature:
                return self._loaded[1]
        users = _read(self.path)
        with self._lock:
            if self._loaded is None or self._loaded[0] != signature:
                self._verified.clear()
            self._loaded = (signature, users)
        return users

    @contextmanager
    def _editing(self) -> Iterator[dict[str, dict[str, Any]]]:
        """The users to change, written back atomically (0600) unless the block raises."""
        create_private_dir(self.directory)
        lock_path = self.directory / f"{USERS_FILE}.lock"
        descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            users = _read(self.path) if self.path.exists() else {}
            yield users
            write_private_file(self.path, json.dumps({"users": users}, indent=1).encode())
        finally:
            os.close(descriptor)


def _read(path: Path) -> dict[str, dict[str, Any]]:
    try:
        users = json.loads(path.read_text(encoding="utf-8"))["users"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise UserError(f"cannot read the users file {path}: {error}") from error
    return dict(users)


def _user(name: str, entry: dict[str, Any]) -> User:
    return User(name, Role(entry["role"]), tuple(entry["projects"]), float(entry["created_at"]))
