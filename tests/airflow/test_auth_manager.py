"""OpenjipAuthManager against the real local Airflow stack: openjip's own users get REST API
tokens and browser logins, and their roles decide what they may do (researchers trigger and
see runs, viewers only see, only admins edit connections, variables and pools)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from openjip.access import UserStore

PASSWORD = "correct horse battery"
USERS = {"ada": "admin", "rita": "researcher", "vic": "viewer", "uma": "uploader"}


@pytest.fixture(scope="module")
def airflow(local_site: Any) -> Iterator[httpx.Client]:
    """An HTTP client of the site's Airflow; the site has one user of each role."""
    store = UserStore(local_site.settings.access_dir)
    for name, role in USERS.items():
        if store.get(name) is None:
            store.add(name, PASSWORD, role, ["p1"])
    with httpx.Client(base_url=local_site.airflow.url, timeout=30) as client:
        yield client


def _token(airflow: httpx.Client, name: str, password: str = PASSWORD) -> httpx.Response:
    return airflow.post("/auth/token", json={"username": name, "password": password})


def _as(airflow: httpx.Client, name: str) -> dict[str, str]:
    answer = _token(airflow, name)
    assert answer.status_code == 201, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def _dag_id(airflow: httpx.Client) -> str:
    dags = airflow.get("/api/v2/dags", headers=_as(airflow, "ada")).json()["dags"]
    return str(dags[0]["dag_id"])


def test_tokens_for_local_users_and_refusals(airflow: httpx.Client) -> None:
    for name in ("ada", "rita", "vic"):
        assert _token(airflow, name).status_code == 201
    assert _token(airflow, "rita", "wrong password").status_code == 401
    assert _token(airflow, "nobody").status_code == 401
    assert airflow.post("/auth/token", json={"username": "rita"}).status_code == 400
    uploader = _token(airflow, "uma")
    assert uploader.status_code == 403
    assert "may not use workflows" in uploader.text
    assert airflow.get("/api/v2/dags").status_code == 401
    forged = {"Authorization": "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZGEifQ."}
    assert airflow.get("/api/v2/dags", headers=forged).status_code in (401, 403)


@pytest.mark.parametrize(
    ("name", "reads_runs", "triggers", "edits_settings"),
    [("ada", True, True, True), ("rita", True, True, False), ("vic", True, False, False)],
)
def test_roles_decide_what_a_user_may_do(
    airflow: httpx.Client, name: str, reads_runs: bool, triggers: bool, edits_settings: bool
) -> None:
    headers = _as(airflow, name)
    dag_id = _dag_id(airflow)
    runs = airflow.get(f"/api/v2/dags/{dag_id}/dagRuns", headers=headers)
    assert (runs.status_code == 200) is reads_runs, runs.text
    trigger = airflow.post(
        f"/api/v2/dags/{dag_id}/dagRuns",
        headers=headers,
        json={"logical_date": None, "dag_run_id": f"auth-test-{name}", "conf": {}},
    )
    assert (trigger.status_code in (200, 409)) is triggers, trigger.text
    if not triggers:
        assert trigger.status_code == 403
    pause = airflow.patch(f"/api/v2/dags/{dag_id}", headers=headers, json={"is_paused": False})
    assert (pause.status_code == 200) is edits_settings, pause.text
    connections = airflow.get("/api/v2/connections", headers=headers)
    assert (connections.status_code == 200) is edits_settings
    variable = airflow.post(
        "/api/v2/variables", headers=headers, json={"key": f"k-{name}", "value": "v"}
    )
    assert (variable.status_code in (201, 409)) is edits_settings, variable.text
    pools = airflow.get("/api/v2/pools", headers=headers)
    assert pools.status_code == 200
    pool = airflow.post("/api/v2/pools", headers=headers, json={"name": f"pool-{name}", "slots": 1})
    assert (pool.status_code in (201, 409)) is edits_settings, pool.text


def test_browser_login_form_sets_the_airflow_cookie(airflow: httpx.Client) -> None:
    page = airflow.get("/auth/login", params={"next": "/dags"})
    assert page.status_code == 200
    assert 'name="username"' in page.text and 'name="password"' in page.text
    refused = airflow.post("/auth/login", data={"username": "vic", "password": "nope"})
    assert refused.status_code == 401
    assert "_token" not in refused.cookies
    signed_in = airflow.post(
        "/auth/login", data={"username": "vic", "password": PASSWORD, "next": "/dags"}
    )
    assert signed_in.status_code == 303
    assert signed_in.headers["location"].endswith("/dags")
    cookie = signed_in.cookies["_token"]
    me = airflow.get("/api/v2/dags", headers={"Authorization": f"Bearer {cookie}"})
    assert me.status_code == 200
    elsewhere = airflow.post(
        "/auth/login",
        data={"username": "vic", "password": PASSWORD, "next": "https://evil.example/"},
    )
    assert "evil.example" not in elsewhere.headers["location"]


def test_menu_shows_admin_pages_to_admins_only(airflow: httpx.Client) -> None:
    def menu(name: str) -> set[str]:
        answer = airflow.get("/ui/auth/menus", headers=_as(airflow, name))
        assert answer.status_code == 200, answer.text
        return set(answer.json()["authorized_menu_items"])

    assert {"Connections", "Variables", "Config"} <= menu("ada")
    assert not {"Connections", "Variables", "Config"} & menu("vic")
    assert "Dags" in menu("vic")
