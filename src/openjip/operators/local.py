"""Running an operator's entrypoint as a local process (the ``local`` mode of a step).

The process gets the environment of :mod:`openjip.sdk.contract` plus the allow-list of
:mod:`openjip.access.environment` (nothing else of its parent's), runs in the operator's folder
with this interpreter's ``bin`` first on PATH (so ``command: [python, main.py]`` uses openjip's
environment), and is stopped with its whole process group on timeout. Its log lines and
progress are streamed to callbacks while it runs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from openjip.access.confinement import Confinement, ConfinementUnavailable, confined_command
from openjip.access.environment import step_environment
from openjip.operators.catalog import LoadedOperator
from openjip.operators.params import resolve_params
from openjip.sdk.contract import (
    DEID_SECRET_ENV,
    INPUT_ENV,
    OPERATOR_ENV,
    OUTPUT_ENV,
    PARAMS_ENV,
    Progress,
    parse_error,
    parse_progress,
)

logger = logging.getLogger(__name__)

LogCallback = Callable[[str, str], None]
"""Called with ``(stream, line)`` for each log line; stream is ``"stdout"`` or ``"stderr"``."""
ProgressCallback = Callable[[Progress], None]

_TAIL_LINES = 200
_KILL_GRACE_SECONDS = 5.0


class StepFailed(RuntimeError):
    """The operator failed: non-zero exit, timeout, or it could not start."""

    def __init__(
        self, message: str, *, returncode: int | None = None, log_tail: list[str] | None = None
    ) -> None:
        self.message = message
        self.returncode = returncode
        self.log_tail = log_tail or []
        super().__init__(message)


@dataclass(frozen=True)
class StepResult:
    """A successful run: where its outputs are and what they are."""

    operator: str
    output_dir: Path
    files: list[Path]
    """Output files relative to ``output_dir``, sorted."""
    duration_seconds: float
    progress: Progress | None = None
    log_tail: list[str] = field(default_factory=list)

    def paths(self) -> list[Path]:
        """The output files as absolute paths."""
        return [self.output_dir / f for f in self.files]


def _log_line(stream: str, line: str) -> None:
    logger.info("[%s] %s", stream, line)


def _step_env(
    operator: LoadedOperator, input_dir: Path, output_dir: Path, params: Mapping[str, Any]
) -> dict[str, str]:
    # An allow-list: no secret of Airflow or of the site, only the step's own contract.
    env = step_environment(os.environ)
    python_bin = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([python_bin, env.get("PATH", "")])
    env["PYTHONUNBUFFERED"] = "1"
    env[INPUT_ENV] = str(input_dir)
    env[OUTPUT_ENV] = str(output_dir)
    env[PARAMS_ENV] = json.dumps(dict(params))
    env[OPERATOR_ENV] = operator.ref
    if "deid" in operator.manifest.secrets:
        env[DEID_SECRET_ENV] = str(_deid_secret_file())
    return env


def _confined(
    confinement: Confinement,
    operator: LoadedOperator,
    input_dir: Path,
    output_dir: Path,
    command: list[str],
    env: dict[str, str],
) -> list[str]:
    """``command`` wrapped to run confined; its ``HOME`` and ``TMPDIR`` become its scratch."""
    scratch = confinement.scratch
    scratch.mkdir(mode=0o700, parents=True, exist_ok=True)
    env["HOME"] = env["TMPDIR"] = str(scratch)
    if DEID_SECRET_ENV in env:
        # The site's secret lies under OPENJIP_HOME, out of the step's reach: it gets a copy in
        # its scratch folder (0600, removed with the step's work folder).
        copy = scratch / "deid.secret"
        copy.touch(mode=0o600)
        copy.write_bytes(Path(env[DEID_SECRET_ENV]).read_bytes())
        env[DEID_SECRET_ENV] = str(copy)
    try:
        return confined_command(
            command,
            read=[operator.directory, input_dir],
            write=[output_dir, scratch],
            private=confinement.private,
        )
    except (ConfinementUnavailable, ValueError) as error:
        raise StepFailed(f"{operator.ref}: cannot confine the step: {error}") from None


def _deid_secret_file() -> Path:
    """The site's de-identification secret file, created first if it is not there yet (the
    step only reads it: a secret of its own would give other pseudonyms)."""
    from openjip.config import get_settings
    from openjip.deid.pseudonyms import site_secret

    settings = get_settings()
    site_secret(settings.home_dir, settings.deid_secret_path)
    return settings.deid_secret_path


def _signal_group(process: subprocess.Popen[str], sig: signal.Signals) -> bool:
    """Send ``sig`` to the process group of ``process``; False when the group is gone."""
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        return False
    return True


def _kill_group(process: subprocess.Popen[str]) -> None:
    """Stop the process group of ``process``: TERM, a grace period for the leader, then KILL.

    KILL goes to the group even after the leader exited, so no child it left behind keeps the
    output pipes (and the reader threads) open.
    """
    if not _signal_group(process, signal.SIGTERM):
        return
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=_KILL_GRACE_SECONDS)
    _signal_group(process, signal.SIGKILL)
    process.wait()


class _Streams:
    """Reads both pipes of the process on threads, dispatching lines as they arrive."""

    def __init__(self, on_log: LogCallback, on_progress: ProgressCallback | None) -> None:
        self.on_log = on_log
        self.on_progress = on_progress
        self.tail: deque[str] = deque(maxlen=_TAIL_LINES)
        self.last_stderr = ""
        self.error_message: str | None = None
        self.progress: Progress | None = None
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def follow(self, stream: str, pipe: IO[str]) -> None:
        thread = threading.Thread(target=self._read, args=(stream, pipe), daemon=True)
        thread.start()
        self._threads.append(thread)

    def join(self) -> None:
        for thread in self._threads:
            thread.join()

    def _read(self, stream: str, pipe: IO[str]) -> None:
        with pipe:
            for raw in pipe:
                self._dispatch(stream, raw.rstrip("\r\n"))

    def _dispatch(self, stream: str, line: str) -> None:
        with self._lock:
            if stream == "stdout":
                progress = parse_progress(line)
                if progress is not None:
                    self.progress = progress
                    if self.on_progress:
                        self.on_progress(progress)
                    return
            else:
                error = parse_error(line)
                if error is not None:
                    self.error_message = error
                    return
                if line.strip():
                    self.last_stderr = line.strip()
            self.tail.append(line)
            self.on_log(stream, line)


def run_operator_locally(
    operator: LoadedOperator,
    input_dir: Path,
    output_dir: Path,
    params: Mapping[str, Any] | None = None,
    *,
    timeout: float | None = None,
    on_log: LogCallback | None = None,
    on_progress: ProgressCallback | None = None,
    confinement: Confinement | None = None,
) -> StepResult:
    """Run ``operator`` on ``input_dir``, writing into ``output_dir`` (new or empty).

    With ``confinement`` the process runs confined (:mod:`openjip.access.confinement`): it reads
    its operator's folder and ``input_dir`` only, writes ``output_dir`` and its scratch folder
    only (its ``HOME`` and ``TMPDIR``), and nothing of ``confinement.private``.

    ``params`` are validated and completed with defaults (raises
    :class:`~openjip.operators.params.ParamError`). Raises :class:`StepFailed` with the operator's
    error message when it exits non-zero, cannot start, or runs longer than ``timeout`` seconds.
    """
    resolved = resolve_params(operator.manifest, params or {})
    input_dir = input_dir.expanduser().resolve()
    output_dir = output_dir.expanduser().resolve()
    if not input_dir.is_dir():
        raise StepFailed(f"input directory {input_dir} does not exist")
    if output_dir.is_dir() and any(output_dir.iterdir()):
        # Everything in the output folder is reported (and published) as this run's result.
        raise StepFailed(f"output directory {output_dir} is not empty")
    output_dir.mkdir(parents=True, exist_ok=True)

    env = _step_env(operator, input_dir, output_dir, resolved)
    command = list(operator.manifest.command)
    if confinement is not None:
        command = _confined(confinement, operator, input_dir, output_dir, command, env)
    streams = _Streams(on_log or _log_line, on_progress)
    started = time.monotonic()
    try:
        process = subprocess.Popen(
            command,
            cwd=operator.directory,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
            bufsize=1,
            start_new_session=True,
        )
    except OSError as exc:
        shown = " ".join(operator.manifest.command)
        raise StepFailed(f"{operator.ref}: cannot start {shown!r}: {exc.strerror}") from None
    assert process.stdout is not None and process.stderr is not None
    streams.follow("stdout", process.stdout)
    streams.follow("stderr", process.stderr)
    timed_out = False
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill_group(process)
    finally:
        # Interrupted (Ctrl-C), or children left behind holding the pipes open: a step is over
        # when its process is, so nothing of its process group outlives it.
        _kill_group(process)
        streams.join()
    duration = time.monotonic() - started

    tail = list(streams.tail)
    if timed_out:
        raise StepFailed(
            f"{operator.ref} timed out after {timeout:g} s", returncode=None, log_tail=tail
        )
    if process.returncode != 0:
        reason = streams.error_message or streams.last_stderr
        message = reason or f"{operator.ref} exited with code {process.returncode}"
        raise StepFailed(message, returncode=process.returncode, log_tail=tail)
    files = sorted(p.relative_to(output_dir) for p in output_dir.rglob("*") if p.is_file())
    return StepResult(operator.ref, output_dir, files, duration, streams.progress, tail)
