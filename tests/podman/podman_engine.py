"""podman as the podman tests drive it: containers.conf with runc and the nofile/nproc limits
this machine lets containers set, ``kube play`` into a network namespace of the pod's own, and
removal of every pod and volume a test made."""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

CONTAINERS_CONF = """\
[containers]
default_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]
[engine]
runtime = "runc"
"""


@dataclass
class Podman:
    """``podman`` with this test's containers.conf; removes what it played afterwards."""

    conf: Path
    pods: list[str]
    volumes: list[str]

    def run(self, *args: str, timeout: float = 300, check: bool = True) -> str:
        result = subprocess.run(
            ["podman", *args],
            env=self._env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)}: {result.stderr[-3000:]}")
        return result.stdout

    def _env(self) -> dict[str, str]:
        return {"CONTAINERS_CONF": str(self.conf), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}

    def create_volume(self, name: str, owner: tuple[int, int]) -> None:
        self.run("volume", "rm", "-f", name, check=False)
        self.run("volume", "create", "--opt", f"o=uid={owner[0]},gid={owner[1]}", name)
        self.volumes.append(name)

    def volume_path(self, name: str) -> Path:
        return Path(self.run("volume", "inspect", "--format", "{{.Mountpoint}}", name).strip())

    def play(self, manifest: dict[str, Any], path: Path) -> None:
        """``podman kube play --network none``: the pod gets a network namespace of its own."""
        path.write_text(yaml.safe_dump(manifest, sort_keys=False))
        name = manifest["metadata"]["name"]
        self.run("pod", "rm", "-f", name, check=False)
        self.pods.append(name)
        self.run("kube", "play", "--network", "none", "--start=false", str(path), timeout=600)

    def start(self, pod: str) -> None:
        """``podman pod start``: init containers run to their end first, then the others."""
        self.run("pod", "start", pod, timeout=600)

    def stop(self, pod: str) -> None:
        """``podman pod stop``: its containers get SIGTERM, then SIGKILL after 20 s."""
        self.run("pod", "stop", "-t", "20", pod, timeout=300, check=False)

    def netns_pid(self, pod: str) -> int:
        """A process in the pod's network namespace (its infra container)."""
        infra = self.run("pod", "inspect", "--format", "{{.InfraContainerID}}", pod).strip()
        self.run("start", infra)
        return int(self.run("inspect", "--format", "{{.State.Pid}}", infra).strip())

    def container(self, name: str) -> dict[str, Any]:
        inspected: list[dict[str, Any]] = json.loads(self.run("inspect", name))
        return inspected[0]

    def exec(
        self, name: str, *command: str, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """``podman exec`` (what the kubelet does for an exec probe)."""
        return subprocess.run(
            ["podman", "exec", name, *command],
            env=self._env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def logs(self, name: str, tail: int = 60) -> str:
        result = subprocess.run(
            ["podman", "logs", "--tail", str(tail), name],
            env=self._env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        return (result.stdout + result.stderr)[-6000:]

    def report(self, pod: str) -> str:
        """What to read when a container of ``pod`` is not as expected: every container of the
        pod (init containers included) with its state, exit code, restarts and log tail."""
        listed = self.run(
            "ps", "-a", "--filter", f"pod={pod}", "--format", "{{.Names}}", check=False
        )
        lines = [f"podman ps -a --filter pod={pod}:"]
        for name in listed.split():
            inspected = self.container(name)
            state, restarts = inspected["State"], inspected.get("RestartCount")
            lines.append(
                f"--- {name}: {state.get('Status')} exit {state.get('ExitCode')}"
                f" oom {state.get('OOMKilled')} restarts {restarts}"
                f" started {state.get('StartedAt')} finished {state.get('FinishedAt')}"
                f" error {state.get('Error') or '-'}"
            )
            lines.append(self.logs(name, tail=25).rstrip() or "(no log)")
        return "\n".join(lines)

    def cleanup(self) -> None:
        for pod in self.pods:
            self.run("pod", "rm", "-f", "-t", "5", pod, check=False)
        for volume in self.volumes:
            self.run("volume", "rm", "-f", volume, check=False)


def wait_until(check: Any, timeout: float, what: str, interval: float = 1.0) -> Any:
    """Poll ``check`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s: {what}")
        time.sleep(interval)
