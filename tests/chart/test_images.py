"""The service images (services/*/Dockerfile) fit the chart: multi-stage, non-root, pinned base,
and the Airflow image leaves the command to its pods (the KubernetesExecutor passes only args)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from chart_objects import REPO, VALUE_SETS, containers, pod_specs

DOCKERFILES = sorted((REPO / "services").glob("*/Dockerfile"))


def instructions(path: Path) -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", path.read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(maxsplit=1)[0].upper(), line.split(maxsplit=1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


def test_there_is_a_dockerfile_per_service_image() -> None:
    assert {path.parent.name for path in DOCKERFILES} == {"openjip", "airflow"}


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.parent.name)
def test_dockerfile_is_multi_stage_non_root_and_pinned(path: Path) -> None:
    steps = instructions(path)
    stages = [argument for keyword, argument in steps if keyword == "FROM"]
    assert len(stages) >= 2, "build in one stage, run from a fresh base"
    (user,) = [argument for keyword, argument in steps if keyword == "USER"]
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) > 0, user
    (base,) = [argument for keyword, argument in steps if keyword == "ARG"]
    assert base.startswith("PYTHON_IMAGE=") and ":" in base and not base.endswith(":latest")
    assert any(keyword == "COPY" and "--from=build" in argument for keyword, argument in steps)


def test_airflow_image_sets_no_entrypoint() -> None:
    steps = instructions(REPO / "services/airflow/Dockerfile")
    assert "ENTRYPOINT" not in {keyword for keyword, _ in steps}


def test_chart_runs_airflow_containers_with_their_whole_command(render_chart: Any) -> None:
    objects = render_chart(VALUE_SETS["kubernetes-executor"])
    for where, pod in pod_specs(objects):
        for container in containers(pod):
            if "/openjip/airflow:" not in container["image"] or container["name"] == "base":
                continue
            command = container.get("command") or container["args"]
            assert command[0] in {"airflow", "bash"}, (where, container["name"], command)


def test_chart_user_ids_match_the_images(render_chart: Any) -> None:
    users = {}
    for path in DOCKERFILES:
        (user,) = [argument for keyword, argument in instructions(path) if keyword == "USER"]
        users[f"/openjip/{path.parent.name}:"] = int(user.split(":")[0])
    for where, pod in pod_specs(render_chart()):
        for container in containers(pod):
            for marker, uid in users.items():
                if marker in container["image"]:
                    runs_as = container["securityContext"].get(
                        "runAsUser", pod["securityContext"]["runAsUser"]
                    )
                    assert runs_as == uid, (where, container["name"])
