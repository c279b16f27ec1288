"""``openjip federation`` commands as a person runs them: init, peers, publish, pull, pending,
approve, audit — against a real peer service; one run goes through the real console script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from openjip.cli.main import app
from openjip.config import Settings
from openjip.web.service import WebService

REPO = Path(__file__).resolve().parents[2]
BODY_MASK_SPEC = Path(__file__).parent / "data" / "shared-body-mask.yaml"


def openjip(home: Path, *args: str, extra_env: dict[str, str] | None = None) -> Any:
    """Run ``openjip federation ARGS`` in-process; ``.stdout``/``.stderr``/``.returncode``."""
    env = {"OPENJIP_HOME": str(home), **(extra_env or {})}
    result = CliRunner().invoke(app, ["federation", *args], env=env)
    result.returncode = result.exit_code  # type: ignore[attr-defined]
    return result


def test_the_console_script_runs_federation_commands(tmp_path: Path) -> None:
    env = {**os.environ, "OPENJIP_HOME": str(tmp_path)}
    command = [sys.executable, "-m", "openjip.cli.main", "federation"]
    init = subprocess.run(
        [*command, "init", "--name", "x"], env=env, capture_output=True, text=True, timeout=120
    )
    assert init.returncode == 0, init.stderr
    again = subprocess.run([*command, "init"], env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 1
    assert "exists already" in again.stderr and "Traceback" not in again.stderr


def test_cli_round_trip_between_two_sites(make_site: Any, tmp_path: Path) -> None:
    a = make_site("a")
    home = tmp_path / "b-cli"
    web = WebService(Settings(home=home, web={"host": "127.0.0.1", "port": 0}))
    web.start()
    allowed = json.dumps(a.exchange.settings.allowed_operators)
    env = {
        "OPENJIP_FEDERATION__ALLOWED_OPERATORS": allowed,
        "OPENJIP_FEDERATION__SITE_WEB_URL": web.url,
    }

    init = openjip(home, "init", "--name", "b")
    assert init.returncode == 0, init.stderr
    b_key = openjip(home, "identity", "--json").stdout
    a.exchange.peers.add("b", "http://127.0.0.1:1", json.loads(b_key)["public_key"])
    assert openjip(home, "peer", "add", "a", a.url, a.exchange.identity.public_key).returncode == 0
    a.exchange.publish(BODY_MASK_SPEC)

    pulled = openjip(home, "pull", "--json", extra_env=env)
    assert pulled.returncode == 0, pulled.stderr
    assert json.loads(pulled.stdout)[0]["outcome"] == "pending"
    (pending,) = json.loads(openjip(home, "pending", "--json").stdout)
    approved = openjip(home, "approve", pending["id"][:6])
    assert approved.returncode == 0, approved.stderr
    assert (home / "workflows" / "shared-body-mask.yaml").exists()
    audit = openjip(home, "audit", "--verify", "--json")
    assert audit.returncode == 0
    assert [entry["event"] for entry in json.loads(audit.stdout)][-2:] == ["fetch", "approve"]
    web.stop()


def test_cli_errors_are_messages_not_traces(tmp_path: Path) -> None:
    home = tmp_path / "site"
    no_identity = openjip(home, "publish", str(BODY_MASK_SPEC))
    assert no_identity.returncode != 0
    assert "openjip federation init" in no_identity.stderr
    assert "Traceback" not in no_identity.stderr
    openjip(home, "init")
    bad_peer = openjip(home, "peer", "add", "x", "http://127.0.0.1:1", "nonsense")
    assert bad_peer.returncode != 0 and "Ed25519" in bad_peer.stderr
    unknown = openjip(home, "approve", "deadbeef")
    assert unknown.returncode != 0 and "no pending bundle" in unknown.stderr
    audit_file = home / "federation" / "audit.jsonl"
    audit_file.write_text(audit_file.read_text().replace('"init"', '"tampered"'))
    broken = openjip(home, "audit", "--verify")
    assert broken.returncode == 1 and "altered" in broken.stderr
