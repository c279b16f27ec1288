"""An approved federated workflow becomes a DAG in the receiving site's real Airflow DagBag,
its origin visible in the DAG's tags and documentation; before approval it is not there."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from airflow.dag_processing.dagbag import DagBag

REPO = Path(__file__).resolve().parents[2]
DAG_FOLDER = REPO / "dags"
BODY_MASK_SPEC = Path(__file__).parent / "data" / "shared-body-mask.yaml"


def _dagbag_of(site: Any, monkeypatch: pytest.MonkeyPatch) -> DagBag:
    monkeypatch.setenv("OPENJIP_HOME", str(site.home))
    return DagBag(dag_folder=str(DAG_FOLDER))


def test_approved_workflow_is_a_dag_with_its_origin(
    make_site: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = make_site("a"), make_site("b")
    a.trust(b)
    b.trust(a)
    a.exchange.publish(BODY_MASK_SPEC)
    b.exchange.pull("a")

    before = _dagbag_of(b, monkeypatch)
    assert "shared-body-mask" not in before.dags

    (pending,) = b.exchange.inbox.pending()
    b.exchange.approve(pending.bundle_id)
    after = _dagbag_of(b, monkeypatch)

    assert after.import_errors == {}
    dag = after.dags["shared-body-mask"]
    assert "federated:a" in dag.tags
    assert a.exchange.identity.site_id in (dag.doc_md or "")
