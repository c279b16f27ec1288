"""A small stand-in for the Kubernetes API server: enough of the core/v1 pods API for the
cncf.kubernetes provider to create, find, read, patch, log and delete pods, recording every call.

No cluster can run on this machine (see /work/shared/TOOLING.md), so the provider's own code
paths run against this instead. A created pod stays where a long analysis step is: scheduled,
its ``fetch`` init container done and its ``step`` init container (the operator) running, so the
pod is ``Pending`` until it is deleted or :meth:`PodsAPI.fail_step` ends its operator. Binds
127.0.0.1 on a free port.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import yaml


@dataclass(frozen=True)
class Call:
    """One request the provider made."""

    method: str
    path: str
    query: dict[str, list[str]]
    body: Any = None


@dataclass
class PodsAPI:
    """The recorded state: pods by (namespace, name) and every call in order."""

    pods: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, call: Call) -> None:
        with self.lock:
            self.calls.append(call)

    def fail_step(self, namespace: str, name: str, exit_code: int = 1) -> None:
        """The pod's operator (init container ``step``) ends with ``exit_code``: the pod fails."""
        with self.lock:
            status = self.pods[(namespace, name)]["status"]
            status["phase"] = "Failed"
            step = status["initContainerStatuses"][1]
            step["state"] = {"terminated": {"exitCode": exit_code, "reason": "Error"}}
            step["ready"] = False

    def made(self, method: str, suffix: str = "") -> list[Call]:
        """The calls with that method whose path ends with ``suffix``."""
        with self.lock:
            return [c for c in self.calls if c.method == method and c.path.endswith(suffix)]


def _status(pod: dict[str, Any]) -> dict[str, Any]:
    """Scheduled, ``fetch`` done, the operator (``step``) running, the rest waiting."""
    spec = pod["spec"]
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    init = []
    for number, container in enumerate(spec.get("initContainers", [])):
        state: dict[str, Any]
        if number == 0:
            state = {"terminated": {"exitCode": 0, "reason": "Completed", "finishedAt": now}}
        elif number == 1:
            state = {"running": {"startedAt": now}}
        else:
            state = {"waiting": {"reason": "PodInitializing"}}
        init.append(_container_status(container, state))
    return {
        "phase": "Pending",
        "conditions": [
            {"type": "PodScheduled", "status": "True"},
            {"type": "Initialized", "status": "False"},
        ],
        "initContainerStatuses": init,
        "containerStatuses": [
            _container_status(container, {"waiting": {"reason": "PodInitializing"}})
            for container in spec["containers"]
        ],
    }


def _container_status(container: dict[str, Any], state: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": container["name"],
        "image": container["image"],
        "imageID": "",
        "ready": False,
        "restartCount": 0,
        "state": state,
    }


def _matches(labels: dict[str, str], selector: str) -> bool:
    """Equality-based label selectors: ``a=b``, ``c!=d``, ``e`` (exists), ``!f`` (does not)."""
    for term in filter(None, selector.split(",")):
        if "!=" in term:
            key, value = term.split("!=", 1)
            matched = labels.get(key) != value
        elif "=" in term:
            key, value = term.split("=", 1)
            matched = labels.get(key) == value
        elif term.startswith("!"):
            matched = term[1:] not in labels
        else:
            matched = term in labels
        if not matched:
            return False
    return True


class _Handler(BaseHTTPRequestHandler):
    api: PodsAPI

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the calls are recorded instead."""

    def _reply(self, code: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _not_found(self, name: str) -> None:
        self._reply(
            404,
            {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound",
             "message": f'pods "{name}" not found', "code": 404},
        )  # fmt: skip

    def _handle(self) -> None:
        url = urlparse(self.path)
        query = parse_qs(url.query)
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        self.api.record(Call(self.command, url.path, query, body))
        parts = url.path.strip("/").split("/")
        # api/v1/namespaces/<ns>/<resource>[/<name>[/<sub>]]
        if parts[:3] != ["api", "v1", "namespaces"] or len(parts) < 5:
            self._reply(404, {"kind": "Status", "code": 404, "message": f"no {url.path} here"})
            return
        namespace, resource, rest = parts[3], parts[4], parts[5:]
        if resource == "events":
            self._reply(200, {"kind": "EventList", "apiVersion": "v1", "items": []})
            return
        if resource != "pods":
            self._reply(404, {"kind": "Status", "code": 404, "message": f"no {resource} here"})
            return
        with self.api.lock:
            if not rest and self.command == "GET":
                selector = query.get("labelSelector", [""])[0]
                items = [
                    pod
                    for (ns, _), pod in self.api.pods.items()
                    if ns == namespace and _matches(pod["metadata"].get("labels", {}), selector)
                ]
                self._reply(200, {"kind": "PodList", "apiVersion": "v1", "items": items})
                return
            if not rest and self.command == "POST":
                pod = dict(body)
                pod["metadata"] = {**pod["metadata"], "namespace": namespace, "uid": "test-uid"}
                pod["status"] = _status(pod)
                self.api.pods[(namespace, pod["metadata"]["name"])] = pod
                self._reply(201, pod)
                return
            name = rest[0]
            pod = self.api.pods.get((namespace, name))
            if pod is None:
                self._not_found(name)
                return
            if len(rest) == 2 and rest[1] == "log":
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                return
            if self.command == "GET":
                self._reply(200, pod)
            elif self.command == "PATCH":
                labels = (body or {}).get("metadata", {}).get("labels", {})
                pod["metadata"].setdefault("labels", {}).update(labels)
                self._reply(200, pod)
            elif self.command == "DELETE":
                del self.api.pods[(namespace, name)]
                self._reply(200, pod)
            else:
                self._reply(405, {"kind": "Status", "code": 405})

    do_GET = do_POST = do_PATCH = do_DELETE = _handle


class KubernetesAPI:
    """The server on 127.0.0.1 and a kubeconfig file pointing at it."""

    def __init__(self, directory: Path) -> None:
        self.api = PodsAPI()
        handler = type("Handler", (_Handler,), {"api": self.api})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        host, port = self._server.server_address[:2]
        self.url = f"http://{host}:{port}"
        self.kubeconfig = directory / "kubeconfig.yaml"
        self.kubeconfig.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "test", "cluster": {"server": self.url}}],
                    "users": [{"name": "test", "user": {"token": "test"}}],
                    "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test"}}],
                    "current-context": "test",
                }
            )
        )

    def start(self) -> KubernetesAPI:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
