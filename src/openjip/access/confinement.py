"""Confining the process of an analysis step on this machine with Linux Landlock: it reads only
the system, the Python installation, its operator's folder and its staged inputs; it writes
only its output folder and its own temporary folder; it opens no TCP connection and signals no
process outside itself. So a step of one run cannot read the object store, the index, another
series or project, the users' file or any secret under ``OPENJIP_HOME``, nor call the site's
services, even though it runs as the same operating-system user.

Landlock (Linux 5.13+, in the kernel's ``lsm=`` list) lets an unprivileged process give up
rights for itself and its children; :func:`confined_command` wraps a command in
``python -m openjip.access.confinement``, which restricts itself, then ``exec``s the command.
TCP needs Landlock ABI 4 (Linux 6.7), signal and abstract-socket scoping ABI 6 (6.12): on older
kernels those parts are missing and :func:`landlock_abi` tells which. Unix sockets named by a
path and UDP are not covered by Landlock; the site's services listen on neither.
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

SYSTEM_READ = ("/usr", "/lib", "/lib32", "/lib64", "/bin", "/sbin", "/etc", "/opt", "/sys")
"""Read (and execute) for every step: programs, libraries, their configuration and ``/sys``."""
PROC_READ = ("/proc/self", "/proc/cpuinfo", "/proc/meminfo", "/proc/stat", "/proc/loadavg")
"""Of ``/proc`` only the step's own process (``/proc/self`` is resolved when the rules are made;
``exec`` keeps the process id) and the machine's figures: the ``environ`` of other processes of
the same user (an Airflow worker's secrets) would be readable otherwise."""
DEVICES = ("/dev/null", "/dev/zero", "/dev/random", "/dev/urandom", "/dev/shm")
"""Readable and writable: the usual devices and shared memory (semaphores of numeric libraries)."""

_SYS_CREATE_RULESET, _SYS_ADD_RULE, _SYS_RESTRICT_SELF = 444, 445, 446  # every architecture
_CREATE_RULESET_VERSION = 1
_RULE_PATH_BENEATH = 1
_PR_SET_NO_NEW_PRIVS = 38
_FS_ACCESS_BY_ABI = {1: (1 << 13) - 1, 2: (1 << 14) - 1, 3: (1 << 15) - 1, 5: (1 << 16) - 1}
"""Every filesystem right Landlock knows at an ABI (execute, write, read, read dir, remove, make
…, refer at 2, truncate at 3, device ioctl at 5)."""
_READ = 1 | 4 | 8  # execute, read file, read dir
_NET_TCP = 1 | 2  # bind, connect
_SCOPE_ALL = 1 | 2  # abstract unix sockets, signals


@dataclass(frozen=True)
class Confinement:
    """How to confine a step: the folder it must not reach, and its own scratch folder."""

    private: Path
    """The site's ``OPENJIP_HOME``: no readable place may hold it."""
    scratch: Path
    """Written by the step only (its ``HOME`` and ``TMPDIR``)."""


class ConfinementUnavailable(RuntimeError):
    """This kernel cannot confine a process (no Landlock)."""


class _RulesetAttr(ctypes.Structure):
    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    ]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def landlock_abi() -> int:
    """The Landlock ABI version of this kernel; 0 when it has none (or is not Linux)."""
    if not sys.platform.startswith("linux"):
        return 0
    version = _libc().syscall(
        _SYS_CREATE_RULESET, None, ctypes.c_size_t(0), _CREATE_RULESET_VERSION
    )
    return max(int(version), 0)


def _fs_rights(abi: int) -> int:
    return _FS_ACCESS_BY_ABI[max(level for level in _FS_ACCESS_BY_ABI if level <= abi)]


def confine(read: Iterable[Path | str], write: Iterable[Path | str]) -> None:
    """Restrict this process (and what it starts) to reading ``read`` and :data:`SYSTEM_READ`,
    writing ``write`` and :data:`DEVICES`, with no TCP and no signals outside itself.

    Paths that do not exist are left out. Raises :class:`ConfinementUnavailable` when the kernel
    has no Landlock, ``OSError`` when a rule cannot be added.
    """
    abi = landlock_abi()
    if abi < 1:
        raise ConfinementUnavailable(
            "this kernel has no Landlock (Linux 5.13 or newer with landlock in its lsm= list)"
        )
    libc = _libc()
    everything = _fs_rights(abi)
    attr = _RulesetAttr(everything, _NET_TCP if abi >= 4 else 0, _SCOPE_ALL if abi >= 6 else 0)
    size = 24 if abi >= 6 else 16 if abi >= 4 else 8
    ruleset = libc.syscall(_SYS_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), 0)
    if ruleset < 0:
        raise OSError(ctypes.get_errno(), "landlock_create_ruleset failed")
    try:
        rules = [(path, _READ) for path in (*SYSTEM_READ, *PROC_READ, *read)]
        rules += [(path, everything) for path in (*DEVICES, *write)]
        for path, rights in rules:
            _allow(libc, ruleset, Path(path), rights)
        if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")
        if libc.syscall(_SYS_RESTRICT_SELF, ruleset, 0) != 0:
            raise OSError(ctypes.get_errno(), "landlock_restrict_self failed")
    finally:
        os.close(ruleset)


def _allow(libc: ctypes.CDLL, ruleset: int, path: Path, rights: int) -> None:
    try:
        descriptor = os.open(os.path.realpath(path), os.O_PATH | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        if not path.is_dir():  # files take file rights only
            rights &= 1 | 2 | 4 | (1 << 14) | (1 << 15)
        rule = _PathBeneathAttr(rights, descriptor)
        if libc.syscall(_SYS_ADD_RULE, ruleset, _RULE_PATH_BENEATH, ctypes.byref(rule), 0) != 0:
            raise OSError(ctypes.get_errno(), f"landlock_add_rule failed for {path}")
    finally:
        os.close(descriptor)


def python_paths() -> list[Path]:
    """Where this interpreter and its packages live (what a Python step needs to read)."""
    places = {Path(sys.prefix), Path(sys.base_prefix), Path(sys.exec_prefix)}
    places |= {Path(entry) for entry in sys.path if entry and Path(entry).is_dir()}
    return sorted({place.resolve() for place in places})


def confined_command(
    command: Sequence[str], read: Iterable[Path], write: Iterable[Path], *, private: Path
) -> list[str]:
    """``command`` wrapped so that it runs confined to ``read``/``write``.

    Raises :class:`ConfinementUnavailable` on a kernel without Landlock, and ``ValueError``
    when one of the readable places holds ``private`` (then confinement would not keep the
    step out of it).
    """
    if landlock_abi() < 1:
        raise ConfinementUnavailable(
            "this kernel has no Landlock (Linux 5.13 or newer with landlock in its lsm= list)"
        )
    private = private.resolve()
    # The interpreter's own path may name folders of the site (Airflow puts its DAG and plugin
    # folders there): only the explicit ``read`` places may lie under ``private``.
    readable = [place for place in python_paths() if not place.is_relative_to(private)]
    readable += [Path(path).resolve() for path in read]
    for place in [*readable, *(Path(p).resolve() for p in SYSTEM_READ)]:
        if private == place or private.is_relative_to(place):
            raise ValueError(f"a step may read {place}, which holds {private}")
    arguments = [sys.executable, "-m", "openjip.access.confinement"]
    arguments += [f"--read={path}" for path in readable]
    arguments += [f"--write={Path(path).resolve()}" for path in write]
    return [*arguments, "--", *command]


def main(argv: list[str]) -> int:
    """``--read=P``... ``--write=P``... ``-- COMMAND...``: confine, then become COMMAND."""
    if "--" not in argv:
        print("usage: python -m openjip.access.confinement [--read=P] [--write=P] -- CMD...")
        return 2
    split = argv.index("--")
    options, command = argv[:split], argv[split + 1 :]
    read = [option.removeprefix("--read=") for option in options if option.startswith("--read=")]
    write = [opt.removeprefix("--write=") for opt in options if opt.startswith("--write=")]
    if not command or len(read) + len(write) != len(options):
        print(f"confinement: unknown options or no command in {argv!r}", file=sys.stderr)
        return 2
    try:
        confine(read, write)
    except (ConfinementUnavailable, OSError) as error:
        print(f"confinement: {error}", file=sys.stderr)
        return 126
    try:
        os.execvp(command[0], command)
    except OSError as error:
        print(f"confinement: cannot start {command[0]!r}: {error.strerror}", file=sys.stderr)
    return 127


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
