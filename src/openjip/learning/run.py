"""A federated-learning run at one site: the task of a federated workflow's DAG.

It reads the cohort the run selected — each series' ``features.json`` written by the spec's
``features_from`` step under ``runs/`` — and then, by the site's role, coordinates (this site's id
is the spec's ``coordinator``: aggregates, and trains too when its own limits allow) or takes
part (joins the coordinator's session through the signed federation channel). Results stay
under ``runs/<workflow>/<run>/<task>/all/``: the final model and per-round metrics at the
coordinator (``model.json``, ``metrics.json``), the site's own metrics at every other site
(``local-metrics.json``); each is recorded in the index as a run output.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
from flwr.clientapp import ClientApp

from openjip.config import Settings
from openjip.federation.exchange import Exchange
from openjip.index import MetadataIndex, Query, RunOutput, open_index
from openjip.learning.client import LocalTraining, client_app
from openjip.learning.coordinator import InternalChannel, coordinate
from openjip.learning.limits import JoinRefused, check_cohort, decide_privacy
from openjip.learning.model import Cohort
from openjip.learning.participant import CoordinatorLink, Participant, ParticipationFailed
from openjip.records.keys import ALL_SERIES, key_safe, output_prefix
from openjip.statistics.loopback import secret_path
from openjip.storage import ObjectNotFound, ObjectStore, open_store
from openjip.workflows.spec import FederatedSpec

log = logging.getLogger(__name__)


class CohortInvalid(Exception):
    """The run's features cannot be read; the message says which series and why."""


def load_cohort(
    store: ObjectStore,
    index: MetadataIndex,
    spec: FederatedSpec,
    *,
    workflow_id: str,
    run_id: str,
    series_uids: list[str],
) -> Cohort:
    """The labelled feature vectors of the run's series (unlabelled series are left out)."""
    rows: list[list[float]] = []
    labels: list[float] = []
    patients: set[str] = set()
    records = {
        s.SeriesInstanceUID: s for s in index.find_series(Query(SeriesInstanceUID=series_uids))
    }
    for uid in series_uids:
        key = output_prefix(workflow_id, run_id, spec.features_from, uid) + "features.json"
        try:
            document = json.loads(store.get(key))
            values = [float(document["features"][name]) for name in spec.features]
        except ObjectNotFound as error:
            raise CohortInvalid(
                f"step {spec.features_from} left no features.json for {uid}"
            ) from error
        except (ValueError, KeyError, TypeError) as error:
            raise CohortInvalid(f"features.json of {uid} lacks feature {error}") from error
        if document.get("label") not in (0, 1):
            log.info("series %s has no label: not trained on", uid)
            continue
        rows.append(values)
        labels.append(float(document["label"]))
        if uid in records:
            patients.add(records[uid].PatientID)
    return Cohort(
        np.asarray(rows, dtype=np.float64).reshape(-1, len(spec.features)),
        np.asarray(labels, dtype=np.float64),
        len(patients),
    )


def federation_url(settings: Settings) -> str:
    """This site's federation service as its own tasks reach it."""
    if settings.learning.federation_url:
        return settings.learning.federation_url
    federation = settings.federation
    scheme = "https" if federation.tls_cert else "http"
    return f"{scheme}://{federation.host}:{federation.port}"


def _local_client(spec: FederatedSpec, settings: Settings, cohort: Cohort) -> ClientApp | None:
    """The coordinator's own ClientApp, when its cohort passes its own limits."""
    try:
        check_cohort(spec, settings.learning, series=cohort.size, patients=cohort.patients)
        privacy = decide_privacy(spec, settings.learning)
    except JoinRefused as refusal:
        log.info("the coordinator does not train itself: %s", refusal)
        return None
    return client_app(cohort, LocalTraining(spec.local_epochs, spec.learning_rate), privacy)


@dataclass(frozen=True)
class RunPlace:
    """Where a site's part of a run keeps its results."""

    store: ObjectStore
    index: MetadataIndex
    workflow_id: str
    run_id: str
    step: str

    def keep(self, name: str, value: Any) -> str:
        """Store ``value`` as JSON under the task's output prefix, recorded as a run output."""
        key = output_prefix(self.workflow_id, self.run_id, self.step, ALL_SERIES) + name
        info = self.store.put(key, json.dumps(value, indent=2, sort_keys=True).encode() + b"\n")
        self.index.add_run_outputs(
            [
                RunOutput(
                    object_key=key,
                    workflow=self.workflow_id,
                    run_id=key_safe(self.run_id),
                    step=self.step,
                    size=info.size,
                    created_at=time.time(),
                )
            ]
        )
        return key


def run_at_site(
    settings: Settings,
    spec: FederatedSpec,
    *,
    workflow_id: str,
    run_id: str,
    series_uids: list[str],
    step: str,
) -> dict[str, Any]:
    """This site's part of the run; a summary (the task's XCom). Raises
    :class:`~openjip.learning.coordinator.CoordinationFailed`,
    :class:`~openjip.learning.participant.ParticipationFailed` or :class:`CohortInvalid`."""
    store, index = open_store(settings), open_index(settings)
    place = RunPlace(store, index, workflow_id, run_id, step)
    try:
        cohort = load_cohort(
            store, index, spec, workflow_id=workflow_id, run_id=run_id, series_uids=series_uids
        )
        exchange = Exchange(settings.home_dir, settings.federation)
        own = exchange.identity.site_id
        if own == spec.coordinator:
            channel = InternalChannel(
                federation_url(settings),
                secret_path(settings.home_dir, settings.federation.loopback_secret_file),
                workflow_id,
            )
            outcome = coordinate(
                spec,
                channel,
                uuid.uuid4().hex,
                own_site_id=own,
                local=_local_client(spec, settings, cohort),
                poll_seconds=settings.learning.poll_seconds,
            )
            metrics = {
                "rounds": outcome.rounds,
                "sites": outcome.sites,
                "declined": outcome.declined,
            }
            keys = [
                place.keep("model.json", outcome.model(spec)),
                place.keep("metrics.json", metrics),
            ]
            return {
                "role": "coordinator",
                "sites": outcome.sites,
                "output_keys": keys,
                "rounds": outcome.rounds,
            }
        peer = exchange.peers.by_site_id(spec.coordinator)
        if peer is None:
            raise ParticipationFailed(
                "unknown-coordinator",
                f"the coordinator {spec.coordinator} is not a peer of this site",
            )
        with exchange.client(peer) as client:
            participation = Participant(
                spec,
                CoordinatorLink(client, workflow_id),
                settings.learning,
                exchange.audit,
                workflow_id=workflow_id,
                own_site_id=own,
                max_bytes=settings.federation.max_payload_bytes,
            ).run(cohort)
        local = {
            "coordinator": peer.name,
            "session_id": participation.session_id,
            "privacy": participation.privacy,
            "rounds": participation.rounds,
            "bytes_sent": participation.bytes_sent,
            "series": cohort.size,
        }
        key = place.keep("local-metrics.json", local)
        return {
            "role": "participant",
            "coordinator": peer.name,
            "output_keys": [key],
            "bytes_sent": participation.bytes_sent,
        }
    finally:
        index.close()
