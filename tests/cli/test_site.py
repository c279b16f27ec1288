"""``openjip site up`` as users run it: a console-script subprocess that prints its endpoints,
answers C-ECHO (dcmtk echoscu), C-STORE and /healthz, and stops cleanly on SIGINT."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
from pathlib import Path

import httpx
import pytest
from pydicom.data import get_testdata_file


@pytest.fixture
def running_site(start_service) -> tuple[subprocess.Popen[str], dict[str, str]]:
    """``openjip site up`` on free ports, with the endpoints it printed."""
    return start_service(["site", "up"], {"dicom_port", "web", "admin_password"})


@pytest.mark.timeout(400)
def test_site_up_serves_dicom_and_http_and_stops_on_sigint(
    running_site: tuple[subprocess.Popen[str], dict[str, str]],
    openjip_script: Path,
    service_env,
) -> None:
    process, printed = running_site
    assert printed.get("ae") == "OPENJIP", printed
    assert printed["dicom_host"] == "127.0.0.1"
    env = service_env()

    echo = subprocess.run(
        ["/usr/bin/echoscu", "-aec", "OPENJIP", "127.0.0.1", printed["dicom_port"]],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
        check=False,
    )
    assert echo.returncode == 0, echo.stderr

    health = httpx.get(f"{printed['web']}/healthz", timeout=10)
    assert health.status_code == 200
    assert health.json() == {"status": "ok"}
    admin = (printed["admin_user"], printed["admin_password"])
    detailed = httpx.get(f"{printed['web']}/healthz", auth=admin, timeout=10)
    assert detailed.json()["components"] == {"store": "ok", "index": "ok"}
    assert httpx.get(f"{printed['web']}/dicom-web/studies", timeout=10).status_code == 401

    ct = str(get_testdata_file("CT_small.dcm"))
    sent = subprocess.run(
        [str(openjip_script), "send", ct, "--port", printed["dicom_port"]],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
        check=False,
    )
    assert sent.returncode == 0, sent.stdout + sent.stderr
    found = subprocess.run(
        [str(openjip_script), "query", "instances", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
        check=False,
    )
    assert [i["PatientID"] for i in json.loads(found.stdout)] == ["1CT1"]

    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=180)
    assert process.returncode == 0, err
    assert "SIGINT received, stopping" in out
    assert "stopped" in out
    assert "Traceback" not in err


@pytest.mark.timeout(300)
@pytest.mark.parametrize("taken", ["OPENJIP_RECEIVER__PORT", "OPENJIP_WEB__PORT"])
def test_site_up_with_a_port_in_use_fails_clearly(
    openjip_script: Path, service_env, taken: str
) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = str(blocker.getsockname()[1])
        result = subprocess.run(
            [str(openjip_script), "site", "up"],
            capture_output=True,
            text=True,
            env=service_env(**{taken: port}),
            timeout=240,
            check=False,
        )
    assert result.returncode == 1
    component = "receiver" if "RECEIVER" in taken else "web"
    assert f"cannot start {component}:" in result.stdout
    assert "in use" in result.stdout
    assert "Traceback" not in result.stderr


def test_bad_setting_is_named(openjip_script: Path, service_env) -> None:
    result = subprocess.run(
        [str(openjip_script), "site", "up"],
        capture_output=True,
        text=True,
        env=service_env(OPENJIP_RECEIVER__PORT="eleven"),
        timeout=180,
        check=False,
    )
    assert result.returncode == 2
    assert "invalid setting: OPENJIP_RECEIVER__PORT" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.timeout(300)
def test_web_alone_serves_health_and_stops_on_sigterm(start_service) -> None:
    process, printed = start_service(
        ["web", "--host", "127.0.0.1", "--port", "0"], {"web"}, OPENJIP_WEB__METRICS_TOKEN="m3tr1cs"
    )
    assert httpx.get(f"{printed['web']}/healthz", timeout=10).status_code == 200
    assert httpx.get(f"{printed['web']}/metrics", timeout=10).status_code == 401
    metrics = httpx.get(
        f"{printed['web']}/metrics", headers={"Authorization": "Bearer m3tr1cs"}, timeout=10
    )
    assert 'openjip_web_requests_total{method="GET",route="/healthz",status="200"} 1.0' in (
        metrics.text
    )
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=180)
    assert process.returncode == 0, err
    assert "SIGTERM received, stopping" in out
