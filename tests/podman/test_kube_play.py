"""The chart's containers started for real with ``podman kube play``: images built from an
offline Debian base; the rendered receiver, web, federation and Airflow containers (commands,
env, non-root users, read-only root file systems) and the migrations Job (as init containers) in
one pod with a network namespace of its own (site_pod.py says what is mapped and why). Each
container becomes ready by its own readiness probe and answers its liveness probe; Airflow runs
against a real PostgreSQL with the chart's migration command and settings; a CT series sent with
dcmtk's storescu into the receiver container is stored in the object store and indexed.

Stand-ins, named: SeaweedFS for MinIO (with the chart's generated store credentials) and SQLite on
a shared volume for OpenSearch (which cannot run here); see netns_services.py (site_checks.py
plays and checks the pod). No cluster: scheduling, Services, NetworkPolicies and the analysis
pods are not exercised.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from chart_processes import CHART_DIR, render
from podman_engine import Podman
from site_checks import check_c_store, check_containers, check_run_started, running_site


# The first run on a machine builds the images (debootstrap and two pip installs, ~10 min).
@pytest.mark.timeout(2400)
def test_the_charts_containers_run_a_c_store_is_stored_and_starts_its_workflow(
    podman: Podman, image_values: dict[str, Any], tmp_path: Path, ct_phantom: list[Path]
) -> None:
    objects = render(image_values)
    prefix = f"openjip-test-{uuid.uuid4().hex[:8]}"
    with running_site(podman, objects, CHART_DIR / "values.yaml", tmp_path, prefix) as site:
        check_containers(podman, site.site.name, site.pid, site.site.manifest["spec"]["containers"])
        uid = check_c_store(podman, site.pid, prefix, ct_phantom, site.store_keys)
        check_run_started(site.pid, uid, site.secrets[("site-openjip-airflow", "admin-password")])
