"""The local Airflow of a site: api-server, scheduler and dag-processor as child processes.

Its home is ``$OPENJIP_HOME/airflow`` (SQLite, LocalExecutor), its DAG folder the project's
``dags/``, the api-server binds 127.0.0.1, the scheduler serves no logs on 0.0.0.0, the JWT
secret is a stable 64-byte secret kept in that home, and tasks reach the execution API on the
api-server's real port. Airflow signs in the site's users with
:class:`openjip.airflow.auth_manager.OpenjipAuthManager`; the site itself calls the API as the
service account ``airflow.username`` with a password generated into AIRFLOW_HOME (0600).
``start()`` returns once the API answers and every valid workflow is parsed and unpaused.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

from openjip.access.files import write_private_file
from openjip.airflow.client import (
    AirflowClient,
    AirflowError,
    ensure_site_password,
    site_password,
)
from openjip.config import Settings
from openjip.workflows.loader import PROJECT_WORKFLOWS, discover_specs, workflow_dirs

log = logging.getLogger(__name__)

DAGS_FOLDER = PROJECT_WORKFLOWS.parent
AUTH_MANAGER = "openjip.airflow.auth_manager.OpenjipAuthManager"
"""Airflow signs in openjip's users (see :mod:`openjip.airflow.auth_manager`)."""
COMPONENTS = {
    "api-server": ["api-server"],
    "scheduler": ["scheduler", "--skip-serve-logs"],
    "dag-processor": ["dag-processor"],
}


class AirflowStartFailed(RuntimeError):
    """The local Airflow did not come up; the message says which part and where its log is."""


def _free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def _jwt_secret(home: Path) -> str:
    path = home / "openjip-jwt-secret"
    if not path.exists():
        write_private_file(path, secrets.token_urlsafe(64).encode())
    return path.read_text(encoding="utf-8").strip()


class AirflowComponent:
    """Airflow of a local site, as a site component."""

    name = "airflow"

    def __init__(self, settings: Settings, *, start_timeout: float = 240.0) -> None:
        self.settings = settings
        self.home = settings.airflow_home
        self.host = settings.airflow.host
        self.port = settings.airflow.port
        self.start_timeout = start_timeout
        self._processes: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: list[IO[bytes]] = []

    @property
    def url(self) -> str:
        """Base URL of the UI and the API."""
        return f"http://{self.host}:{self.port}"

    def environment(self) -> dict[str, str]:
        """The environment of every Airflow process (and so of every task)."""
        env = dict(os.environ)
        secret = _jwt_secret(self.home)
        bin_dir = str(Path(sys.executable).parent)
        env.update(
            {
                "PATH": bin_dir + os.pathsep + env.get("PATH", ""),
                "OPENJIP_HOME": str(self.settings.home_dir),
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__PARALLELISM": str(self.settings.airflow.parallelism),
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
                "AIRFLOW__CORE__AUTH_MANAGER": AUTH_MANAGER,
                "AIRFLOW__API__HOST": self.host,
                "AIRFLOW__API__PORT": str(self.port),
                "AIRFLOW__API__BASE_URL": self.url,
                # One worker serves a site's few users; four (the default) cost ~600 MB.
                "AIRFLOW__API__WORKERS": "1",
                "AIRFLOW__API_AUTH__JWT_SECRET": secret,
                "AIRFLOW__API__SECRET_KEY": secret,
                # Specs added to the site's workflow folder show up within half a minute.
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
                "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "30",
                "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
                # The LocalExecutor forks all `parallelism` workers (~135 MiB each) at start;
                # with spawn it starts one when a task is queued (the first task waits ~2 s).
                "AIRFLOW__SCHEDULER__MP_START_METHOD": "spawn",
            }
        )
        env["OPENJIP_AIRFLOW__PORT"] = str(self.port)
        return env

    def start(self) -> None:
        """Migrate the database, start the three processes, wait until workflows are ready."""
        self.home.mkdir(parents=True, exist_ok=True)
        if self.port == 0:
            self.port = _free_port(self.host)
            # The trigger hook and CLI calls in this process find Airflow through the settings.
            self.settings.airflow.port = self.port
        if not self.settings.airflow.password.get_secret_value():
            ensure_site_password(self.home, self.settings.airflow.username)
        env = self.environment()
        airflow = str(Path(sys.executable).with_name("airflow"))
        migrate = subprocess.run(
            [airflow, "db", "migrate"], env=env, capture_output=True, text=True, timeout=600
        )
        if migrate.returncode != 0:
            tail = (migrate.stderr or migrate.stdout).strip().splitlines()[-5:]
            raise AirflowStartFailed("airflow db migrate failed:\n" + "\n".join(tail))
        for name, arguments in COMPONENTS.items():
            log_file = (self.home / f"openjip-{name}.log").open("ab")
            self._logs.append(log_file)
            self._processes[name] = subprocess.Popen(
                [airflow, *arguments],
                env=env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def client(self) -> AirflowClient:
        """A REST client logged in as the site's admin."""
        return AirflowClient(self.url, self.settings.airflow.username, self.password())

    def password(self) -> str:
        """The admin password (configured, or the one Airflow generated)."""
        return site_password(self.settings)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        expected = set(discover_specs(workflow_dirs(self.settings)).specs)
        client: AirflowClient | None = None
        last = "api-server not answering"
        try:
            while time.monotonic() < deadline:
                self._check_alive()
                if client is None:
                    probe = AirflowClient(self.url, "", "")
                    healthy = probe.healthy()
                    probe.close()
                    if healthy:
                        client = self.client()
                else:
                    try:
                        known = {dag["dag_id"]: dag for dag in client.dags()}
                    except AirflowError as error:
                        last = str(error)
                    else:
                        missing = expected - set(known)
                        for dag_id in expected & set(known):
                            if known[dag_id].get("is_paused"):
                                client.set_paused(dag_id, False)
                        if not missing:
                            return
                        last = f"workflows not parsed yet: {sorted(missing)}"
                time.sleep(1.0)
        finally:
            if client is not None:
                client.close()
        raise AirflowStartFailed(f"Airflow not ready after {self.start_timeout:.0f} s: {last}")

    def _check_alive(self) -> None:
        for name, process in self._processes.items():
            if process.poll() is not None:
                raise AirflowStartFailed(
                    f"airflow {name} exited with {process.returncode};"
                    f" see {self.home / f'openjip-{name}.log'}"
                )

    def stop(self) -> None:
        """Stop the processes (and their workers), politely first."""
        for process in self._processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        for process in self._processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self._processes.clear()
        for log_file in self._logs:
            log_file.close()
        self._logs.clear()

    def endpoints(self) -> list[str]:
        """The UI's URL and how to log in (no password: those never go to logs)."""
        return [f"Airflow    {self.url}  (sign in as a site user, see `openjip user`)"]
