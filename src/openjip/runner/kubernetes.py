"""The pod of an analysis step in ``kubernetes`` mode, as a plain value.

Airflow itself runs these pods: the DAG factory makes each step a pod task
(:class:`openjip.airflow.pod_tasks.AnalysisPodOperator`, a KubernetesPodOperator), so the
provider starts, watches, streams the logs of and deletes the pod — on success, failure, kill
and timeout. This module only says what the pod is.

The pod runs three phases that share one ``emptyDir`` at ``/work``:

1. init container ``fetch`` (openjip image): the step's inputs from the web service into
   ``/work/input``;
2. init container ``step`` (the operator's pinned image): the operator's command, writing to
   ``/work/output`` — its resources (CPU, memory, GPU) are the step's;
3. container ``base`` (openjip image): hands the outputs to the web service, which stores them
   under ``runs/...`` and ingests DICOM results, and returns a summary as the task's XCom.

The pod holds no store or index credential: fetch and publish present a *step grant*
(:mod:`openjip.runner.grants`), minted when the task starts, valid a little longer than the
step's timeout and good for exactly this step's inputs and output prefix, which the web service
verifies. The operator's container gets neither the grant nor any other credential, and the
chart's NetworkPolicy lets the pod reach the web service only. Every container runs as non-root
with no privilege escalation, a read-only root filesystem and all capabilities dropped. The pod
is a plain value (:meth:`AnalysisPod.manifest`) so it can be validated, and the chart's
NetworkPolicies checked against it, without a cluster.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from openjip.config import Settings
from openjip.operators.params import resolve_params
from openjip.runner.base import StepRequest, key_safe
from openjip.sdk.contract import DEID_SECRET_ENV, INPUT_ENV, OPERATOR_ENV, OUTPUT_ENV, PARAMS_ENV
from openjip.workflows.spec import split_operator_ref

if TYPE_CHECKING:
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

WORK_DIR = "/work"
GRANT_ENV = "OPENJIP_STEP_GRANT"
"""The step grant (:mod:`openjip.runner.grants`) of the fetch and publish phases."""
WEB_URL_ENV = "OPENJIP_STEP_WEB_URL"
"""Where the fetch and publish phases reach the web service's ``/steps`` routes."""
GRANT_MARGIN_SECONDS = 600
"""A grant outlives the step's timeout by this much (the pod's wait for a node included)."""
RUN_AS_USER = 1000
DEID_SECRET_DIR, DEID_SECRET_KEY = "/var/run/openjip/deid", "deid.secret"
"""Where a step that asks for the ``deid`` secret finds it (the chart's Secret key)."""
STEP_IO = ["python", "-m", "openjip.runner.step_io"]
"""The openjip image's command that fetches a step's inputs and publishes its outputs."""
POD_BEHAVIOUR: dict[str, Any] = {
    "init_container_logs": True,  # the operator's own output reaches the task log
    "do_xcom_push": True,  # the publish phase's summary is the task's XCom
    "on_finish_action": "delete_pod",  # after success and after failure; logs are in Airflow
    "on_kill_action": "delete_pod",
    "random_name_suffix": True,
    "image_pull_policy": "IfNotPresent",
}
"""How the KubernetesPodOperator of a step handles its pod (the same for every step)."""


def pod_name(dag_id: str, step: str) -> str:
    """The pod's name before the provider adds its random suffix (a DNS label)."""
    return key_safe(f"{dag_id}-{step}").lower().replace("_", "-").replace(".", "-")[:50]


class AnalysisPod:
    """What the pod of a step is, from the site's settings."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def arguments(self, request: StepRequest) -> dict[str, Any]:
        """The pod's content as KubernetesPodOperator arguments (also its attribute names)."""
        from kubernetes.client import models as k8s

        from openjip.operators import find_operator

        name, version = split_operator_ref(request.operator)
        manifest = find_operator(name, version).manifest
        resources = request.resources or manifest.resources
        requests = {"cpu": resources.cpu, "memory": resources.memory}
        limits: dict[str, str] = {"memory": resources.memory}
        if resources.gpu:
            limits["nvidia.com/gpu"] = str(resources.gpu)
        airflow = self.settings.airflow
        volume = k8s.V1Volume(name="work", empty_dir=k8s.V1EmptyDirVolumeSource())
        mounts = [
            k8s.V1VolumeMount(name="work", mount_path=WORK_DIR),
            k8s.V1VolumeMount(name="tmp", mount_path="/tmp"),
        ]
        container_security = k8s.V1SecurityContext(
            run_as_non_root=True,
            run_as_user=RUN_AS_USER,
            allow_privilege_escalation=False,
            read_only_root_filesystem=True,
            capabilities=k8s.V1Capabilities(drop=["ALL"]),
        )
        platform_env = self._platform_env(request)
        step_env, step_mounts, secret_volumes = self._site_secrets(manifest.secrets)
        small = k8s.V1ResourceRequirements(
            requests={"cpu": "100m", "memory": "256Mi"}, limits={"memory": "1Gi"}
        )
        fetch = k8s.V1Container(
            name="fetch",
            image=airflow.step_image,
            command=[*STEP_IO, "fetch"],
            env=platform_env,
            volume_mounts=mounts,
            resources=small,
            security_context=container_security,
        )
        step = k8s.V1Container(
            name="step",
            image=manifest.image,
            command=list(manifest.command),
            env=[
                k8s.V1EnvVar(name=INPUT_ENV, value=f"{WORK_DIR}/input"),
                k8s.V1EnvVar(name=OUTPUT_ENV, value=f"{WORK_DIR}/output"),
                # Defaults filled in and values typed, exactly as a local run gets them.
                k8s.V1EnvVar(
                    name=PARAMS_ENV, value=json.dumps(resolve_params(manifest, request.params))
                ),
                k8s.V1EnvVar(name=OPERATOR_ENV, value=manifest.ref),
                k8s.V1EnvVar(name="HOME", value="/tmp"),
                *step_env,
            ],
            volume_mounts=[*mounts, *step_mounts],
            resources=k8s.V1ResourceRequirements(requests=requests, limits=limits),
            security_context=container_security,
        )
        labels = {
            "app.kubernetes.io/name": "openjip-step",
            "app.kubernetes.io/part-of": "openjip",
            "openjip.org/workflow": request.dag_id,
            "openjip.org/step": request.step,
            "openjip.org/operator": name,
        }
        return dict(
            name=pod_name(request.dag_id, request.step),
            namespace=airflow.namespace,
            image=airflow.step_image,
            cmds=[*STEP_IO, "publish"],
            env_vars=platform_env,
            init_containers=[fetch, step],
            volumes=[
                volume,
                k8s.V1Volume(name="tmp", empty_dir=k8s.V1EmptyDirVolumeSource()),
                *secret_volumes,
            ],
            volume_mounts=mounts,
            container_resources=small,
            security_context=k8s.V1PodSecurityContext(
                run_as_non_root=True,
                run_as_user=RUN_AS_USER,
                run_as_group=RUN_AS_USER,
                fs_group=RUN_AS_USER,
                seccomp_profile=k8s.V1SeccompProfile(type="RuntimeDefault"),
            ),
            container_security_context=container_security,
            service_account_name=airflow.service_account,
            automount_service_account_token=False,
            labels=labels,
            annotations={"openjip.org/operator-ref": request.operator},
        )

    def _site_secrets(self, secrets: Sequence[str]) -> tuple[list[Any], list[Any], list[Any]]:
        """Env, mounts (of the operator's container only) and volumes of the site secrets the
        manifest asks for: ``deid``, the Secret ``deid.secret_name`` as a read-only file."""
        from kubernetes.client import models as k8s

        if "deid" not in secrets:
            return [], [], []
        volume = k8s.V1Volume(
            name="deid-secret",
            secret=k8s.V1SecretVolumeSource(
                secret_name=self.settings.deid.secret_name,
                items=[k8s.V1KeyToPath(key=DEID_SECRET_KEY, path=DEID_SECRET_KEY)],
                default_mode=0o440,  # group-readable: fs_group is the step user
            ),
        )
        mount = k8s.V1VolumeMount(name="deid-secret", mount_path=DEID_SECRET_DIR, read_only=True)
        env = k8s.V1EnvVar(name=DEID_SECRET_ENV, value=f"{DEID_SECRET_DIR}/{DEID_SECRET_KEY}")
        return [env], [mount], [volume]

    def operator(self, request: StepRequest) -> KubernetesPodOperator:
        """A plain KubernetesPodOperator of ``request`` (what a pod task builds at run time)."""
        from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

        return KubernetesPodOperator(
            task_id=request.step, **POD_BEHAVIOUR, **self.arguments(request)
        )

    def manifest(self, request: StepRequest) -> dict[str, Any]:
        """The pod of ``request`` as a Kubernetes manifest (what the API server would get)."""
        from kubernetes.client import ApiClient

        pod = self.operator(request).build_pod_request_obj(dry_run=True)
        manifest: dict[str, Any] = ApiClient().sanitize_for_serialization(pod)
        return manifest

    def _platform_env(self, request: StepRequest) -> list[Any]:
        """The web service's URL and the step's grant: no store or index credential at all."""
        from kubernetes.client import models as k8s

        from openjip.runner.grants import mint_grant

        secret = self.settings.access.step_token_secret.get_secret_value()
        if not secret:
            raise ValueError(
                "analysis pods need a step grant: set OPENJIP_ACCESS__STEP_TOKEN_SECRET "
                "(the same for Airflow and the web service)"
            )
        airflow = self.settings.airflow
        seconds = airflow.step_timeout_minutes * 60 + 2 * GRANT_MARGIN_SECONDS
        return [
            k8s.V1EnvVar(name=WEB_URL_ENV, value=airflow.step_web_url),
            k8s.V1EnvVar(name=GRANT_ENV, value=mint_grant(secret, request, seconds)),
            k8s.V1EnvVar(name="HOME", value="/tmp"),
        ]
