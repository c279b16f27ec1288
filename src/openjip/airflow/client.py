"""A small client of Airflow's REST API v2: token, trigger a run, list runs and DAGs, unpause,
read task instances, their logs and XComs.

Airflow 3 authenticates API calls with a JWT from ``POST /auth/token``; the token is fetched once
and again when a call answers 401. Connection failures and 5xx answers raise
:class:`AirflowUnavailable` (try again later); other refusals raise :class:`AirflowError` with
Airflow's own message.
"""

from __future__ import annotations

import json
import logging
import secrets
from pathlib import Path
from typing import Any

import httpx

from openjip.access.files import write_private_file
from openjip.config import Settings

# Every REST call (health polls at start-up, each trigger) would be an INFO line of httpx.
logging.getLogger("httpx").setLevel(logging.WARNING)

PASSWORDS_FILE = "openjip_site_passwords.json"
"""The generated password of the local site's service account (``airflow.username``), in
AIRFLOW_HOME, 0600; :class:`openjip.airflow.auth_manager.OpenjipAuthManager` accepts it."""


class AirflowError(Exception):
    """Airflow refused a request; the message is Airflow's."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class AirflowUnavailable(AirflowError):
    """Airflow cannot be reached or failed on its side; retrying later may work."""


class RunExists(AirflowError):
    """A run with that id already exists (triggering is idempotent by run id)."""


def site_password(settings: Settings) -> str:
    """The API password: the configured one, or the local site's generated admin password."""
    configured = settings.airflow.password.get_secret_value()
    if configured:
        return configured
    path = settings.airflow_home / PASSWORDS_FILE
    try:
        passwords = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise AirflowUnavailable(f"no Airflow password configured and none in {path}") from error
    return str(passwords.get(settings.airflow.username, ""))


class AirflowClient:
    """Calls Airflow's REST API v2 as one user."""

    def __init__(
        self, base_url: str, username: str, password: str, *, timeout: float = 30.0
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.username = username
        self.password = password
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout)
        self._token: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> AirflowClient:
        """A client of the site's Airflow with the site's credentials."""
        return cls(settings.airflow_url, settings.airflow.username, site_password(settings))

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def healthy(self) -> bool:
        """Whether the API server answers its health check."""
        try:
            return self._http.get("/api/v2/monitor/health").status_code == 200
        except httpx.HTTPError:
            return False

    def trigger(self, dag_id: str, run_id: str | None, conf: dict[str, Any]) -> dict[str, Any]:
        """Start a run of ``dag_id`` named ``run_id`` (Airflow names it when ``None``);
        :class:`RunExists` if a run of that name exists already."""
        body: dict[str, Any] = {"logical_date": None, "conf": conf}
        if run_id is not None:
            body["dag_run_id"] = run_id
        return self._call("POST", f"/api/v2/dags/{dag_id}/dagRuns", json=body)

    def runs(self, dag_id: str, limit: int = 100) -> list[dict[str, Any]]:
        """The newest runs of ``dag_id``, newest first."""
        params = {"limit": limit, "order_by": "-run_after"}
        answer = self._call("GET", f"/api/v2/dags/{dag_id}/dagRuns", params=params)
        return list(answer.get("dag_runs", []))

    def run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        """One run of ``dag_id``."""
        return self._call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """Every task instance of one run (mapped ones once per map index)."""
        answer = self._call(
            "GET",
            f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances",
            params={"limit": 1000},
        )
        return list(answer.get("task_instances", []))

    def task_log(
        self, dag_id: str, run_id: str, task_id: str, *, try_number: int = 1, map_index: int = -1
    ) -> str:
        """The log of one task instance try as text, one event per line."""
        answer = self._call(
            "GET",
            f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}",
            params={"map_index": map_index, "full_content": True},
            headers={"Accept": "application/json"},
        )
        content = answer.get("content", [])
        if isinstance(content, str):
            return content
        return "\n".join(
            str(item.get("event", item)) if isinstance(item, dict) else str(item)
            for item in content
        )

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str, *, map_index: int = -1) -> Any:
        """The value a task instance pushed as XCom ``key``; ``None`` if it pushed none."""
        try:
            answer = self._call(
                "GET",
                f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}",
                params={"map_index": map_index},
            )
        except AirflowError as error:
            if error.status == 404:
                return None
            raise
        value = answer.get("value")
        if isinstance(value, str):  # stored as JSON text by some paths
            try:
                return json.loads(value)
            except ValueError:
                return value
        return value

    def dags(self) -> list[dict[str, Any]]:
        """Every DAG Airflow knows."""
        return list(self._call("GET", "/api/v2/dags", params={"limit": 1000}).get("dags", []))

    def set_paused(self, dag_id: str, paused: bool) -> dict[str, Any]:
        """Pause or unpause ``dag_id``."""
        return self._call("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": paused})

    def plugins(self) -> list[dict[str, Any]]:
        """The plugins Airflow loaded, with their views."""
        return list(self._call("GET", "/api/v2/plugins").get("plugins", []))

    def import_errors(self) -> list[dict[str, Any]]:
        """Import errors of the DAG files."""
        return list(self._call("GET", "/api/v2/importErrors").get("import_errors", []))

    def _authenticate(self) -> str:
        try:
            answer = self._http.post(
                "/auth/token", json={"username": self.username, "password": self.password}
            )
        except httpx.HTTPError as error:
            raise AirflowUnavailable(
                f"Airflow at {self.base_url} is unreachable: {error}"
            ) from error
        if answer.status_code >= 500:
            raise AirflowUnavailable(f"Airflow login failed: HTTP {answer.status_code}")
        if answer.status_code >= 400:
            raise AirflowError(f"Airflow login as {self.username!r} refused", answer.status_code)
        return str(answer.json()["access_token"])

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        extra_headers = kwargs.pop("headers", {})
        for attempt in range(2):
            if self._token is None:
                self._token = self._authenticate()
            try:
                headers = {**extra_headers, "Authorization": f"Bearer {self._token}"}
                answer = self._http.request(method, path, headers=headers, **kwargs)
            except httpx.HTTPError as error:
                raise AirflowUnavailable(f"Airflow at {self.base_url}: {error}") from error
            if answer.status_code == 401 and attempt == 0:
                self._token = None
                continue
            break
        if answer.status_code >= 500:
            raise AirflowUnavailable(f"Airflow {method} {path}: HTTP {answer.status_code}")
        if answer.status_code == 409:
            raise RunExists(_detail(answer), 409)
        if answer.status_code >= 400:
            raise AirflowError(_detail(answer), answer.status_code)
        result: dict[str, Any] = answer.json() if answer.content else {}
        return result


def _detail(answer: httpx.Response) -> str:
    try:
        detail = answer.json().get("detail", answer.text)
    except ValueError:
        detail = answer.text
    return f"HTTP {answer.status_code}: {detail}"


def ensure_site_password(airflow_home: Path, username: str) -> None:
    """Generate the service account's password once, into a file that is 0600 from the start."""
    path = airflow_home / PASSWORDS_FILE
    passwords = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    if passwords.get(username):
        return
    passwords[username] = secrets.token_urlsafe(24)
    write_private_file(path, json.dumps(passwords).encode())
