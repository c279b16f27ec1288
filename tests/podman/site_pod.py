"""The chart's workloads as one pod for ``podman kube play`` (podman 4.3, Debian bookworm).

The containers are the rendered ones — image, command, args, environment, ports, probes,
non-root user, read-only root file system, dropped capabilities — gathered from several
Deployments (and the migrations Job, as the first init container) into one pod, so that they
share one private network namespace (``--network none``: loopback only), where the chart's
Service names resolve to 127.0.0.1. What podman 4.3 cannot take as the chart has it is turned
into what it can, the same way for every container:

* the pod's ``securityContext`` user and group go onto each container (pods differ in them);
* Secret and ConfigMap volumes become host folders holding the rendered files, owned by the
  workload's user (the kubelet's ``fsGroup``); env ``secretKeyRef`` values are resolved from the
  rendered Secrets (podman 4.3 reads them only from podman secrets);
* PersistentVolumeClaims become podman named volumes owned by the workload's user, named
  ``<prefix>-<claim>``; emptyDirs stay emptyDirs (podman gives them the container's user);
* ``/etc/hosts`` is a mounted file mapping every Service of the release to 127.0.0.1 (podman 4.3
  ignores ``hostAliases``);
* volume names get their workload's name in front, so two workloads' ``home`` stay apart;
* the pod restarts containers ``OnFailure`` (a Deployment's pods say ``Always``, which podman
  4.3 applies to init containers too, running the migrations again and again);
* container ``ports`` are left out of what podman plays (it refuses port mappings in a pod
  without a network; the services listen on the pod's loopback all the same) — the probes read
  the port names from :attr:`SitePod.manifest`, which keeps them.
"""

from __future__ import annotations

import base64
import copy
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chart_processes import resolve_env, secret_values


@dataclass
class SitePod:
    """The pod manifest and what must exist before ``podman kube play`` reads it."""

    manifest: dict[str, Any]
    volumes: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Named podman volumes to create, with their owner (uid, gid)."""

    @property
    def name(self) -> str:
        """The pod's name (its containers are named ``<pod>-<workload>-<container>``)."""
        name: str = self.manifest["metadata"]["name"]
        return name

    def playable(self) -> dict[str, Any]:
        """The manifest as podman plays it (no container ports)."""
        manifest = copy.deepcopy(self.manifest)
        for group in ("initContainers", "containers"):
            for container in manifest["spec"][group]:
                container.pop("ports", None)
        return manifest


def _files_of(item: dict[str, Any], kind: str) -> dict[str, bytes]:
    if kind == "Secret":
        return {key: base64.b64decode(value) for key, value in (item.get("data") or {}).items()}
    return {key: value.encode() for key, value in (item.get("data") or {}).items()}


def _find(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    for item in objects:
        if item["kind"] == kind and item["metadata"]["name"] == name:
            return item
    raise LookupError(f"the chart renders no {kind} {name}")


class SitePodBuilder:
    """Gathers workloads into one pod; ``scratch`` holds the host files it needs. The pod and
    its volumes are named after ``volume_prefix`` (unique per test), so that tests running at
    the same time on one machine never replace each other's pod."""

    def __init__(self, objects: list[dict[str, Any]], scratch: Path, volume_prefix: str) -> None:
        self.objects = objects
        self.scratch = scratch
        self.prefix = volume_prefix
        self.secrets = secret_values(objects)
        self.containers: list[dict[str, Any]] = []
        self.init_containers: list[dict[str, Any]] = []
        self.volumes: list[dict[str, Any]] = []
        self.named_volumes: dict[str, tuple[int, int]] = {}
        hosts = scratch / "hosts"
        services = sorted(o["metadata"]["name"] for o in objects if o["kind"] == "Service")
        hosts.write_text(f"127.0.0.1 localhost {' '.join(services)}\n::1 localhost\n")
        hosts.chmod(0o644)
        self.volumes.append({"name": "etc-hosts", "hostPath": {"path": str(hosts), "type": "File"}})

    def add(
        self,
        kind: str,
        name: str,
        *,
        env: dict[str, dict[str, str]] | None = None,
        mounts: dict[str, list[dict[str, Any]]] | None = None,
    ) -> None:
        """Add the pod template of a workload; ``env`` and ``mounts`` (by container name) are the
        test's named additions; a Job's containers become init containers."""
        template = _find(self.objects, kind, name)["spec"]["template"]["spec"]
        security = template.get("securityContext", {})
        uid, gid = int(security.get("runAsUser", 0)), int(security.get("runAsGroup", 0))
        short = name.removeprefix("site-openjip-")
        renamed = {v["name"]: f"{short}-{v['name']}" for v in template.get("volumes", [])}
        for volume in template.get("volumes", []):
            self.volumes.append(self._volume(volume, renamed[volume["name"]], uid, gid))
        for group, target in (
            ("initContainers", self.init_containers),
            ("containers", self.init_containers if kind == "Job" else self.containers),
        ):
            for spec in template.get(group, []):
                container = self._container(spec, short, renamed, uid, gid, env, mounts)
                target.append(container)

    def _container(
        self,
        spec: dict[str, Any],
        short: str,
        renamed: dict[str, str],
        uid: int,
        gid: int,
        env: dict[str, dict[str, str]] | None,
        mounts: dict[str, list[dict[str, Any]]] | None,
    ) -> dict[str, Any]:
        container = copy.deepcopy(spec)
        container["name"] = f"{short}-{spec['name']}"
        values = resolve_env(spec, self.secrets)
        values.update((env or {}).get(spec["name"], {}))
        container["env"] = [{"name": key, "value": value} for key, value in values.items()]
        container["volumeMounts"] = [
            {**mount, "name": renamed[mount["name"]]} for mount in spec.get("volumeMounts", [])
        ]
        container["volumeMounts"] += (mounts or {}).get(spec["name"], [])
        container["volumeMounts"].append(
            {"name": "etc-hosts", "mountPath": "/etc/hosts", "readOnly": True}
        )
        context = container.setdefault("securityContext", {})
        context.setdefault("runAsUser", uid)
        context.setdefault("runAsGroup", gid)
        return container

    def _volume(self, volume: dict[str, Any], name: str, uid: int, gid: int) -> dict[str, Any]:
        for kind, key in (("secret", "secretName"), ("configMap", "name")):
            if kind in volume:
                source = volume[kind]
                item = _find(
                    self.objects, "Secret" if kind == "secret" else "ConfigMap", source[key]
                )
                return {"name": name, "hostPath": self._folder(name, item, kind, source, uid, gid)}
        if "persistentVolumeClaim" in volume:
            claim = f"{self.prefix}-{volume['persistentVolumeClaim']['claimName']}"
            self.named_volumes.setdefault(claim, (uid, gid))
            return {"name": name, "persistentVolumeClaim": {"claimName": claim}}
        if "emptyDir" in volume:
            return {"name": name, "emptyDir": {}}
        raise ValueError(f"volume {volume} has a kind these tests do not map")

    def _folder(
        self,
        name: str,
        item: dict[str, Any],
        kind: str,
        source: dict[str, Any],
        uid: int,
        gid: int,
    ) -> dict[str, Any]:
        folder = self.scratch / "volumes" / name
        folder.mkdir(parents=True)
        files = _files_of(item, "Secret" if kind == "secret" else "ConfigMap")
        items = source.get("items") or [{"key": key, "path": key} for key in files]
        mode = int(source.get("defaultMode", 0o644))
        for entry in items:
            path = folder / entry["path"]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(files[entry["key"]])
            path.chmod(int(entry.get("mode", mode)))
            os.chown(path, uid, gid)
        # Folders as the kubelet makes them, whatever the umask: every user of the pod enters them
        # (the migrations Job's create-bucket runs as another user than its pod's).
        for directory in [folder, *(d for d in folder.rglob("*") if d.is_dir())]:
            directory.chmod(0o755)
        os.chown(folder, uid, gid)
        return {"path": str(folder), "type": "Directory"}

    def add_volume(self, volume: dict[str, Any], owner: tuple[int, int] | None = None) -> None:
        """A volume of the test's own (e.g. the SQLite index standing in for OpenSearch)."""
        self.volumes.append(volume)
        if owner is not None and "persistentVolumeClaim" in volume:
            self.named_volumes[volume["persistentVolumeClaim"]["claimName"]] = owner

    def build(self) -> SitePod:
        """The pod."""
        manifest = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": self.prefix, "labels": {"app.kubernetes.io/part-of": "openjip"}},
            "spec": {
                "restartPolicy": "OnFailure",
                "initContainers": self.init_containers,
                "containers": self.containers,
                "volumes": self.volumes,
            },
        }
        return SitePod(manifest, dict(self.named_volumes))
