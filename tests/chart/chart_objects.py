"""The objects a Helm render produces, and the value sets the chart tests render.

Plain functions over parsed manifests (no Helm here), shared by the tests in tests/chart/.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
CHART_DIR = REPO / "charts" / "openjip"
RELEASE = "site"
NAMESPACE = "openjip"

EXTERNAL_SERVICES: dict[str, Any] = {
    "minio": {"enabled": False},
    "opensearch": {"enabled": False},
    "postgresql": {"enabled": False},
    "externalS3": {
        "endpoint": "s3.hospital.example:9443",
        "secure": True,
        "region": "eu-central-1",
        "existingSecret": "hospital-s3",
        "cidrs": ["192.168.40.0/24"],
    },
    "externalOpenSearch": {
        "url": "https://search.hospital.example:9200",
        "existingSecret": "hospital-opensearch",
        "cidrs": ["192.168.41.10/32"],
    },
    "externalPostgresql": {
        "host": "db.hospital.example",
        "existingSecret": "hospital-db",
        "sslmode": "verify-full",
        "cidrs": ["192.168.42.0/28"],
    },
}

# Value sets every render-wide test runs over (the issue asks for default + at least five).
VALUE_SETS: dict[str, dict[str, Any]] = {
    "default": {},
    "external-services": EXTERNAL_SERVICES,
    "kubernetes-executor": {
        "airflow": {"executor": "KubernetesExecutor", "scheduler": {"replicas": 2}},
    },
    "loadbalancer-receiver": {
        "receiver": {
            "replicas": 3,
            "service": {
                "type": "LoadBalancer",
                "nodePort": 31112,
                "externalTrafficPolicy": "Local",
                "loadBalancerSourceRanges": ["10.20.0.0/16"],
            },
        },
    },
    "nodeport-receiver": {"receiver": {"service": {"type": "NodePort"}}},
    "minimal": {
        "airflow": {"enabled": False},
        "federation": {"enabled": False},
        "tests": {"enabled": False},
        "receiver": {"allowedCallingAEs": ["CT1", "MR2"]},
    },
    "everything-disabled": {
        "receiver": {"enabled": False},
        "web": {"enabled": False},
        "federation": {"enabled": False},
        "airflow": {"enabled": False},
        "minio": {"enabled": False},
        "opensearch": {"enabled": False},
        "postgresql": {"enabled": False},
        "tests": {"enabled": False},
        "networkPolicy": {"enabled": False},
        "rbac": {"create": False},
    },
    "backups-to-own-s3": {
        "backup": {
            "enabled": True,
            "timeZone": "Europe/Berlin",
            "s3": {
                "bucket": "site-backups",
                "prefix": "hospital-a/openjip",
                "endpoint": "backup.hospital.example:9443",
                "region": "eu-central-1",
                "existingSecret": "backup-s3",
                "cidrs": ["192.168.50.0/24"],
            },
        },
        "upgradeCheck": {"maxBackupAgeHours": 24},
    },
    "backups-to-volume": {"backup": {"enabled": True, "destination": "volume"}},
    "air-gapped-mirror": {
        "global": {"imageRegistry": "registry.hospital.local:5000", "imagePullSecrets": ["mirror"]},
        "images": {
            "openjip": {"digest": "sha256:" + "a" * 64},
            "airflow": {"digest": "sha256:" + "b" * 64},
        },
        "serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
        "networkPolicy": {
            "ingressFrom": [{"ipBlock": {"cidr": "172.16.0.0/12"}}],
            "metricsNamespaceLabels": {"kubernetes.io/metadata.name": "monitoring"},
        },
        "federation": {
            "peerEgress": {"cidrs": ["192.168.0.0/16", "172.20.0.0/16"]},
            "tls": {"secretName": "federation-tls", "caBundleConfigMap": "peer-cas"},
        },
        "airflow": {"executor": "KubernetesExecutor"},
    },
    "single-sign-on": {
        "access": {
            "oidc": {
                "issuer": "https://sso.hospital.example/realms/openjip",
                "clientSecret": {"existingSecret": "openjip-oidc"},
                "groups": {"radiology": {"roles": ["viewer"], "projects": ["p1"]}},
            }
        },
        "ingress": {
            "enabled": True,
            "className": "nginx",
            "web": {"host": "images.hospital.example", "tlsSecretName": "images-tls"},
            "airflow": {"host": "workflows.hospital.example", "tlsSecretName": "workflows-tls"},
            "keycloak": {"host": "sso.hospital.example", "tlsSecretName": "sso-tls"},
        },
        "keycloak": {"enabled": True},
        "receiver": {
            "tls": {"secretName": "dicom-tls"},
            "knownAEs": {"PACS": {"host": "pacs.hospital.example", "port": 104, "tls": True}},
        },
    },
}


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge ``override`` into a copy of ``base`` (how Helm layers values files)."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def manifests_to_objects(
    manifests: dict[str, str], show_only: list[str] | None = None
) -> list[dict[str, Any]]:
    """Parse Helm's rendered files into objects; ``show_only`` keeps files ending in those paths."""
    objects = []
    for path, text in sorted(manifests.items()):
        if path.endswith("NOTES.txt"):
            continue
        if show_only and not any(path.endswith(wanted) for wanted in show_only):
            continue
        objects.extend(doc for doc in yaml.load_all(text, Loader=yaml.CSafeLoader) if doc)
    return objects


def find(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    """Objects of ``kind`` (and ``metadata.name``, when given)."""
    return [
        obj
        for obj in objects
        if obj["kind"] == kind and (name is None or obj["metadata"]["name"] == name)
    ]


def embedded_pods(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Pods carried as text inside ConfigMaps (the KubernetesExecutor's pod template)."""
    pods = []
    for config_map in find(objects, "ConfigMap"):
        for text in (config_map.get("data") or {}).values():
            if text.lstrip().startswith("apiVersion"):
                document = yaml.load(text, Loader=yaml.CSafeLoader)
                if isinstance(document, dict) and document.get("kind") == "Pod":
                    pods.append(document)
    return pods


def pod_specs(objects: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """(``Kind/name``, pod spec) of every workload, test pod and embedded pod template."""
    specs = []
    for obj in [*objects, *embedded_pods(objects)]:
        kind = obj["kind"]
        spec = obj.get("spec", {})
        if kind == "Pod":
            pod = spec
        elif kind in {"Deployment", "StatefulSet", "Job", "DaemonSet", "ReplicaSet"}:
            pod = spec["template"]["spec"]
        elif kind == "CronJob":
            pod = spec["jobTemplate"]["spec"]["template"]["spec"]
        else:
            continue
        specs.append((f"{kind}/{obj['metadata']['name']}", pod))
    return specs


def containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return [*pod.get("initContainers", []), *pod.get("containers", [])]


def pod_labels(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, str]:
    (workload,) = find(objects, kind, name)
    labels: dict[str, str] = workload["spec"]["template"]["metadata"]["labels"]
    return labels
