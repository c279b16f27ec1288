"""The chart's containers as local processes: command, args and environment read from the
rendered chart (helm-python-sdk), with the cluster's names mapped to this machine.

What a container gets from Kubernetes and what it gets here:

* command: the container's ``command``, else the image's ENTRYPOINT (read from its Dockerfile
  under services/), then its ``args``; the executable is this venv's;
* environment: the container's ``env`` in order, ``secretKeyRef`` values from the rendered
  Secrets (or a value the test names, e.g. credentials of a server it started), ``$(VAR)``
  expanded as the kubelet does;
* loopback: bind addresses ``0.0.0.0`` become ``127.0.0.1``, a value equal to one of the
  container's ports becomes a free local port, ``service:port`` of another component becomes the
  local address of what stands in for it, and a path under a volume mount becomes a temp folder.

Anything the test must change beyond that is an explicit override, named in the test.
"""

from __future__ import annotations

import base64
import json
import re
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import helm_python
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART_DIR = REPO / "charts" / "openjip"
SERVICES_DIR = REPO / "services"
RELEASE = "site"
NAMESPACE = "openjip"
_VARIABLE = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def render(
    values: dict[str, Any] | None = None, chart_dir: Path = CHART_DIR
) -> list[dict[str, Any]]:
    """Every object the chart renders with ``values`` (release ``site``, namespace ``openjip``);
    ``chart_dir``: another version of the chart (e.g. the previous release's)."""
    with helm_python.Chart.load(chart_dir) as chart:
        manifests = chart.render(values or {}, name=RELEASE, namespace=NAMESPACE)
    return [
        document
        for path, text in manifests.items()
        if path.endswith(".yaml")  # not NOTES.txt
        for document in yaml.safe_load_all(text)
        if isinstance(document, dict)
    ]


def workload(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    """The rendered object of that kind and name."""
    for item in objects:
        if item["kind"] == kind and item["metadata"]["name"] == name:
            return item
    raise LookupError(f"the chart renders no {kind} {name}")


def container(item: dict[str, Any], name: str) -> dict[str, Any]:
    """The container ``name`` of a Deployment's or StatefulSet's pod template."""
    for candidate in item["spec"]["template"]["spec"]["containers"]:
        if candidate["name"] == name:
            return dict(candidate)
    raise LookupError(f"{item['metadata']['name']} has no container {name}")


def secret_values(objects: list[dict[str, Any]]) -> dict[tuple[str, str], str]:
    """``(secret name, key) -> value`` of every rendered Secret."""
    values = {}
    for item in objects:
        if item["kind"] != "Secret":
            continue
        for key, encoded in (item.get("data") or {}).items():
            values[(item["metadata"]["name"], key)] = base64.b64decode(encoded).decode()
        for key, text in (item.get("stringData") or {}).items():
            values[(item["metadata"]["name"], key)] = text
    return values


def resolve_env(spec: dict[str, Any], secrets: dict[tuple[str, str], str]) -> dict[str, str]:
    """A container's ``env`` as the kubelet gives it: in order, ``secretKeyRef`` values from
    ``secrets``, ``$(VAR)`` of variables defined before expanded."""
    env: dict[str, str] = {}
    for item in spec.get("env", []):
        if "value" in item:
            value = str(item["value"])
        else:
            ref = item["valueFrom"]["secretKeyRef"]
            value = secrets[(ref["name"], ref["key"])]
        env[item["name"]] = _VARIABLE.sub(lambda match: env.get(match[1], match[0]), value)
    return env


def image_dockerfile(image: str) -> Path:
    """services/<name>/Dockerfile of ``registry/owner/<name>:tag``."""
    name = image.rsplit("/", 1)[-1].split("@")[0].split(":")[0]
    path = SERVICES_DIR / name / "Dockerfile"
    if not path.is_file():
        raise LookupError(f"no Dockerfile builds {image} (looked for {path})")
    return path


def image_entrypoint(image: str) -> list[str]:
    """The ENTRYPOINT of the image's last stage (exec form), empty when it has none."""
    entrypoint: list[str] = []
    for line in image_dockerfile(image).read_text(encoding="utf-8").splitlines():
        if line.startswith("FROM "):
            entrypoint = []
        elif line.startswith("ENTRYPOINT "):
            entrypoint = json.loads(line.removeprefix("ENTRYPOINT "))
    return entrypoint


def free_port() -> int:
    """A port of 127.0.0.1 nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Loopback:
    """How the cluster's names map to this machine."""

    services: dict[str, str] = field(default_factory=dict)
    """``host:port`` (or a URL prefix) of a component -> the local address standing in for it."""
    ports: dict[int, int] = field(default_factory=dict)
    """Container port -> local port (filled for every port of the container started)."""
    mounts: dict[str, Path] = field(default_factory=dict)
    """Mount path -> local folder (filled for every volume mount of the container started)."""
    secrets: dict[tuple[str, str], str] = field(default_factory=dict)
    """``(secret, key)`` values that replace the rendered ones (credentials of local servers)."""

    def translate(self, value: str) -> str:
        """``value`` as the process here needs it."""
        if value == "0.0.0.0":
            return "127.0.0.1"
        if value.isdigit() and int(value) in self.ports:
            return str(self.ports[int(value)])
        for remote, local in self.services.items():
            value = value.replace(remote, local)
        for mount in sorted(self.mounts, key=len, reverse=True):
            if value == mount or value.startswith(mount + "/"):
                return str(self.mounts[mount]) + value[len(mount) :]
        return value


@dataclass
class ChartProcess:
    """What to start for one container: the command line and its whole environment."""

    argv: list[str]
    env: dict[str, str]
    ports: dict[int, int]
    """Container port -> the local port it listens on."""


def chart_process(
    objects: list[dict[str, Any]],
    spec: dict[str, Any],
    loopback: Loopback,
    scratch: Path,
    overrides: dict[str, str] | None = None,
) -> ChartProcess:
    """The local process of the container ``spec`` of a rendered workload; ``overrides`` are
    environment values the test replaces (each one a named deviation from the chart)."""
    for port in spec.get("ports", []):
        loopback.ports.setdefault(int(port["containerPort"]), free_port())
    for mount in spec.get("volumeMounts", []):
        local = scratch / mount["name"]
        local.mkdir(parents=True, exist_ok=True)
        loopback.mounts.setdefault(mount["mountPath"], local)
    secrets = {**secret_values(objects), **loopback.secrets}
    env = {name: loopback.translate(value) for name, value in resolve_env(spec, secrets).items()}
    env.update(overrides or {})
    command = list(spec.get("command") or image_entrypoint(spec["image"]))
    argv = [*command, *spec.get("args", [])]
    argv[0] = str(Path(sys.executable).with_name(argv[0]))
    env["PATH"] = f"{Path(sys.executable).parent}:/usr/bin:/bin"
    return ChartProcess(argv, env, dict(loopback.ports))
