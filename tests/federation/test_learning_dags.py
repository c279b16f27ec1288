"""The federated-learning example end to end: a federated workflow published by site A, pulled
and approved by B and C, run as a DAG at all three sites at once (``dag.test()`` in one process
per site, each with its own OPENJIP_HOME and Airflow database) on each site's own phantom CTs,
with the real features operator as the step before the federated task."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from openjip.config import Settings
from openjip.index import Query, open_index
from openjip.ingest import Ingestor
from openjip.learning import model
from openjip.learning.example import FEATURES, SITES, write_cohort
from openjip.learning.model import Cohort
from openjip.storage import open_store

DAGS = Path(__file__).resolve().parents[2] / "dags"
WORKFLOW = "nodule-classifier"
PATIENTS = 8
RUN_DAG = f"""
import json, sys
from airflow.dag_processing.dagbag import DagBag
from airflow.models import DagRun
bag = DagBag(dag_folder={str(DAGS)!r})
assert not bag.import_errors, bag.import_errors
run = bag.dags[{WORKFLOW!r}].test()
stored = DagRun.find(dag_id={WORKFLOW!r})  # every run in this site's own database
print("RESULT", json.dumps({{"state": str(run.state), "run_id": run.run_id,
      "stored": [str(r.state) for r in stored]}}))
"""


def spec_for(coordinator: str) -> dict[str, Any]:
    """The example's federated workflow with A as its coordinator."""
    return {
        "id": WORKFLOW,
        "version": "1.0.0",
        "title": "Nodule classifier (federated)",
        "description": "Learns nodule present or not from lung-mask features at three sites.",
        "input": {"kind": "query", "query": {"Modality": "CT"}},
        "steps": [{"name": "features", "operator": "nodule-features@0.1.0"}],
        "federated": {
            "coordinator": coordinator,
            "features_from": "features",
            "features": FEATURES,
            "rounds": 5,
            "sites": 3,
            "min_sites": 3,
            "min_cohort": 5,
            "round_timeout_seconds": 60,
            "join_timeout_seconds": 120,
        },
    }


@pytest.fixture(scope="module")
def migrated_airflow(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An Airflow home with a migrated metadata database, copied for each site."""
    home = tmp_path_factory.mktemp("airflow-template")
    airflow = Path(sys.executable).with_name("airflow")
    subprocess.run(
        [str(airflow), "db", "migrate"],
        check=True,
        capture_output=True,
        timeout=300,
        env={**os.environ, "AIRFLOW_HOME": str(home)},
    )
    return home


def _ingest(home: Path, files: list[Path]) -> None:
    settings = Settings(home=home)
    index = open_index(settings)
    ingestor = Ingestor(open_store(settings), index)
    for path in files:
        ingestor.ingest_file(path, source_ae="SCANNER")
    index.close()


def _pooled_features(homes: dict[str, Path], runs: dict[str, str]) -> tuple[Cohort, Cohort]:
    """Train and test parts of all three sites' features, split as each site splits its own."""
    from openjip.learning.run import load_cohort
    from openjip.workflows.spec import FederatedSpec

    spec = FederatedSpec.model_validate(spec_for("0" * 32)["federated"])
    trains, tests = [], []
    for name, home in homes.items():
        settings = Settings(home=home)
        index = open_index(settings)
        uids = [s.SeriesInstanceUID for s in index.find_series(Query(Modality="CT"))]
        cohort = load_cohort(
            open_store(settings),
            index,
            spec,
            workflow_id=WORKFLOW,
            run_id=runs[name],
            series_uids=uids,
        )
        index.close()
        train_part, test_part = cohort.split()
        trains.append(train_part)
        tests.append(test_part)

    return Cohort.pooled(trains), Cohort.pooled(tests)


def test_published_approved_and_run_at_three_sites(
    make_site: Any, migrated_airflow: Path, tmp_path: Path
) -> None:
    sites = {s.name: make_site(s.name, also_allowed=("nodule-features@0.1.0",)) for s in SITES}
    a, b, c = sites["a"], sites["b"], sites["c"]
    for participant in (b, c):
        a.trust(participant)
        participant.trust(a)
    for example in SITES:
        _ingest(
            sites[example.name].home,
            write_cohort(example, tmp_path / "scans" / example.name, patients=PATIENTS),
        )

    spec_file = tmp_path / "nodule-classifier.yaml"
    spec_file.write_text(yaml.safe_dump(spec_for(a.exchange.identity.site_id), sort_keys=False))
    a.exchange.publish(spec_file)
    (a.home / "workflows").mkdir(parents=True, exist_ok=True)
    shutil.copy(spec_file, a.home / "workflows" / spec_file.name)
    for participant in (b, c):
        [pulled] = participant.exchange.pull()
        assert pulled.outcome == "pending", pulled
        participant.exchange.approve(pulled.message)
        assert len(participant.workflow_files()) == 1

    processes = {}
    for name, site in sites.items():
        airflow_home = tmp_path / f"airflow-{name}"
        airflow_home.mkdir()  # airflow.cfg names its database by path: only the database is copied
        shutil.copy(migrated_airflow / "airflow.db", airflow_home / "airflow.db")
        env = {
            **os.environ,
            "AIRFLOW_HOME": str(airflow_home),
            "OPENJIP_HOME": str(site.home),
            "OPENJIP_LEARNING__FEDERATION_URL": site.url,
            "OPENJIP_LEARNING__MIN_COHORT": "5",
            "OPENJIP_LEARNING__POLL_SECONDS": "0.2",
            "OPENJIP_FEDERATION__SITE_WEB_URL": site.exchange.settings.site_web_url,
        }
        processes[name] = subprocess.Popen(
            [sys.executable, "-c", RUN_DAG],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
    results, logs = {}, {}
    for name, process in processes.items():
        output, _ = process.communicate(timeout=900)
        logs[name] = output
        (tmp_path / f"{name}.log").write_text(output)
        lines = [line for line in output.splitlines() if line.startswith("RESULT ")]
        results[name] = json.loads(lines[-1][len("RESULT ") :]) if lines else None
    for name in sites:
        assert results[name] is not None, logs[name][-3000:]
        assert results[name]["state"] == "success", logs[name][-3000:]
        assert results[name]["stored"] == ["success"]  # the site's own Airflow keeps the run

    runs = {name: results[name]["run_id"] for name in sites}
    store_a = open_store(Settings(home=a.home))
    keys = [info.key for info in store_a.list(f"runs/{WORKFLOW}/")]
    [model_key] = [key for key in keys if key.endswith("/federated/all/model.json")]
    trained = json.loads(store_a.get(model_key))
    train_part, test_part = _pooled_features({n: s.home for n, s in sites.items()}, runs)
    federated = model.evaluate(
        [np.asarray(trained["weights"]), np.asarray([trained["bias"]])], test_part
    )["accuracy"]
    central = model.evaluate(
        model.train(
            model.initial_parameters(len(FEATURES)), train_part, epochs=100, learning_rate=0.5
        ),
        test_part,
    )["accuracy"]
    assert central >= 0.8
    assert federated >= 0.9 * central, (federated, central)
    for name in "bc":
        store = open_store(Settings(home=sites[name].home))
        assert any(
            info.key.endswith("/federated/all/local-metrics.json")
            for info in store.list(f"runs/{WORKFLOW}/")
        )


def test_a_federated_spec_gets_its_federated_task_after_the_features_step() -> None:
    from openjip.airflow.dags import FEDERATED_TASK, build_dag
    from openjip.airflow.federated import FederatedLearningOperator
    from openjip.workflows.spec import WorkflowSpec
    from openjip.workflows.validation import validate_spec

    document = spec_for("ab" * 16)
    assert validate_spec(document) == []
    dag = build_dag(WorkflowSpec.model_validate(document))
    task = dag.get_task(FEDERATED_TASK)
    assert isinstance(task, FederatedLearningOperator)
    assert task.upstream_task_ids == {"select_series", "features"}  # its series, their features
    broken = {**document, "federated": {**document["federated"], "features_from": "nothing"}}
    assert [error.path for error in validate_spec(broken)] == ["federated.features_from"]


def test_under_the_kubernetes_executor_the_federated_task_gets_its_own_pod(
    tmp_path: Path,
) -> None:
    from openjip.airflow.dags import FEDERATED_TASK, build_dag
    from openjip.workflows.spec import WorkflowSpec

    spec = WorkflowSpec.model_validate(spec_for("ab" * 16))
    template = "/opt/openjip/pod-template/federated_pod_template.yaml"
    settings = Settings(home=tmp_path, learning={"pod_template_file": template})
    dag = build_dag(spec, settings=settings)
    assert dag.get_task(FEDERATED_TASK).executor_config == {"pod_template_file": template}
    assert dag.get_task("features").executor_config == {}  # the other tasks: the worker's pod
    assert (
        build_dag(spec, settings=Settings(home=tmp_path)).get_task(FEDERATED_TASK).executor_config
        == {}
    )
