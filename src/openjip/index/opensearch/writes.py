"""The write path of the OpenSearch backend: instances created or replaced under CAS, then the
counts of their series and studies changed by scripted upserts (see :mod:`.counts`), study
fields propagated and shrinking bounds re-aggregated."""

from __future__ import annotations

from typing import Any

from opensearchpy.exceptions import ConflictError, NotFoundError

from openjip.index.base import (
    DEFAULT_PROJECTS,
    IndexUnavailable,
    InstanceRecord,
    InvalidRecord,
    RunOutput,
    SeriesRecord,
    require_uids,
)
from openjip.index.opensearch.cluster import Cluster, item_reason
from openjip.index.opensearch.counts import (
    PROJECTS_SCRIPT,
    SET_FIELDS_SCRIPT,
    Changes,
    changed_fields,
)
from openjip.index.opensearch.mappings import series_record, to_document

CAS_ATTEMPTS = 10
"""Attempts to replace or delete an instance that other writers keep changing."""
MAX_ID_BYTES = 512
"""OpenSearch's limit on a document ``_id`` (run outputs are keyed by their object key)."""
_OLD_INSTANCE_FIELDS = ["SeriesInstanceUID", "StudyInstanceUID", "size", "received_at"]


def upsert_instances(cluster: Cluster, records: list[InstanceRecord]) -> int:
    """Create or replace the instances, then change the counts of their series and studies."""
    for record in records:
        require_uids(record)
    batch = list({record.SOPInstanceUID: record for record in records}.values())
    if not batch:
        return 0
    cluster.ensure_indices()
    known_series, known_studies = _known(cluster, batch)
    _check_series_ownership(batch, known_series)

    changes = Changes()
    new = 0
    refused: list[str] = []
    for record, item in zip(batch, _create_instances(cluster, batch), strict=True):
        if item["status"] == 201:
            changes.add(record)
            new += 1
        elif item["status"] == 409:
            new += _replace_instance(cluster, record, changes)
        else:
            refused.append(f"{record.SOPInstanceUID} ({item_reason(item)})")
    # Count what was written even when some of the batch was refused.
    _apply(cluster, changes, known_studies)
    if refused:
        raise InvalidRecord(f"{cluster.where} refused instances: {', '.join(refused)}")
    return new


def delete_instance(cluster: Cluster, sop_instance_uid: str) -> bool:
    """Delete the instance document under CAS; its series and study counts follow."""
    cluster.ensure_indices()
    for _ in range(CAS_ATTEMPTS):
        old = cluster.get(cluster.instances, sop_instance_uid, _OLD_INSTANCE_FIELDS)
        if old is None:
            return False
        try:
            with cluster.unavailable("delete instance"):
                cluster.client.delete(
                    index=cluster.instances,
                    id=sop_instance_uid,
                    if_seq_no=old["_seq_no"],
                    if_primary_term=old["_primary_term"],
                    refresh=cluster.refresh,
                )
        except ConflictError:
            continue
        except NotFoundError:
            return False
        changes = Changes()
        changes.remove(old["_source"])
        _apply(cluster, changes, {})
        return True
    raise IndexUnavailable(
        f"{cluster.where}: instance {sop_instance_uid} kept changing while being deleted"
    )


def mark_series_complete(
    cluster: Cluster, series_instance_uid: str, last_received_at: float
) -> SeriesRecord | None:
    """Compare-and-set on the series document's sequence number: of concurrent sweepers
    that read the same version, only the first write succeeds; the others get 409."""
    cluster.ensure_indices()
    doc = cluster.get(cluster.series, series_instance_uid)
    if doc is None:
        return None
    source = doc["_source"]
    if source.get("complete") or source.get("last_received_at") != last_received_at:
        return None
    change = {"complete": True, "version": int(source.get("version", 0)) + 1}
    try:
        with cluster.unavailable("mark series complete"):
            cluster.client.update(
                index=cluster.series,
                id=series_instance_uid,
                body={"doc": change},
                if_seq_no=doc["_seq_no"],
                if_primary_term=doc["_primary_term"],
                refresh=cluster.refresh,
            )
    except (ConflictError, NotFoundError):
        return None
    return series_record({**source, **change})


def add_run_outputs(cluster: Cluster, outputs: list[RunOutput]) -> None:
    """Index the outputs in one bulk request; the object key is the document id, so
    recording a key again replaces its document."""
    too_long = [o.object_key for o in outputs if len(o.object_key.encode()) > MAX_ID_BYTES]
    if too_long:
        raise InvalidRecord(
            f"{cluster.where} takes object keys of at most {MAX_ID_BYTES} bytes as run outputs:"
            f" {', '.join(too_long)}"
        )
    if not outputs:
        return
    cluster.ensure_indices()
    actions: list[dict[str, Any]] = []
    for output in outputs:
        actions.append({"index": {"_index": cluster.runs, "_id": output.object_key}})
        actions.append(output.to_dict())
    cluster.bulk(actions, "write run outputs", expected=set())


def _known(
    cluster: Cluster, batch: list[InstanceRecord]
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """The series and studies of the batch that exist, by UID, in one request."""
    series_uids = sorted({r.SeriesInstanceUID for r in batch})
    study_uids = sorted({r.StudyInstanceUID for r in batch})
    docs = [{"_index": cluster.series, "_id": uid} for uid in series_uids]
    docs += [{"_index": cluster.studies, "_id": uid} for uid in study_uids]
    with cluster.unavailable("read series and studies"):
        found = cluster.client.mget(body={"docs": docs})["docs"]
    series: dict[str, dict[str, Any]] = {}
    studies: dict[str, dict[str, Any]] = {}
    for doc in found:
        if doc.get("found"):
            (series if doc["_index"] == cluster.series else studies)[doc["_id"]] = doc["_source"]
    return series, studies


def _create_instances(cluster: Cluster, batch: list[InstanceRecord]) -> list[dict[str, Any]]:
    """Write each instance with op_type create; the result of each: 201 created, 409 it
    existed already, another 4xx the document was refused (bad data)."""
    actions: list[dict[str, Any]] = []
    for record in batch:
        actions.append({"create": {"_index": cluster.instances, "_id": record.SOPInstanceUID}})
        actions.append(to_document(record))
    return cluster.bulk(actions, "write instances", expected=set(range(400, 500)) - {429})


def _replace_instance(cluster: Cluster, record: InstanceRecord, changes: Changes) -> int:
    """Replace an existing instance under CAS and record how its series change; 1 if it
    moved to another series (and so counts as new there), else 0."""
    for _ in range(CAS_ATTEMPTS):
        old = cluster.get(cluster.instances, record.SOPInstanceUID, _OLD_INSTANCE_FIELDS)
        cas: dict[str, Any] = (
            {"if_seq_no": old["_seq_no"], "if_primary_term": old["_primary_term"]}
            if old
            else {"op_type": "create"}
        )
        try:
            with cluster.unavailable("replace instance"):
                cluster.client.index(
                    index=cluster.instances,
                    id=record.SOPInstanceUID,
                    body=to_document(record),
                    refresh=cluster.refresh,
                    **cas,
                )
        except ConflictError:
            continue
        if old is None:  # deleted meanwhile: this write created it
            changes.add(record)
            return 1
        before = old["_source"]
        if (before["SeriesInstanceUID"], before["StudyInstanceUID"]) != (
            record.SeriesInstanceUID,
            record.StudyInstanceUID,
        ):
            changes.remove(before)
            changes.add(record)
            return 1
        changes.replace(record, old_size=before["size"], old_received=before["received_at"])
        return 0
    raise IndexUnavailable(
        f"{cluster.where}: instance {record.SOPInstanceUID} kept changing while being replaced"
    )


def _apply(cluster: Cluster, changes: Changes, known_studies: dict[str, dict[str, Any]]) -> None:
    """Send the series changes, then the study changes they imply, then propagate changed
    study fields and re-aggregate bounds that may have shrunk."""
    series_uids = list(changes.series)
    if series_uids:
        actions: list[dict[str, Any]] = []
        for uid in series_uids:
            change = changes.series[uid]
            actions += change.actions(cluster.series, uid, known_studies.get(change.study_uid))
        items = cluster.bulk(actions, "count series", expected={404})
        for uid, item in zip(series_uids, items, strict=True):
            study = changes.study(changes.series[uid].study_uid)
            if item.get("result") == "created":
                study.series += 1
            elif item.get("result") == "deleted":
                study.series -= 1
                study.recount = True
    study_uids = list(changes.studies)
    if study_uids:
        actions = []
        for uid in study_uids:
            actions += changes.studies[uid].actions(cluster.studies, uid)
        cluster.bulk(actions, "count studies", expected={404})
    for uid in study_uids:
        changed = changed_fields(changes.studies[uid].fields, known_studies.get(uid))
        if changed:
            _propagate_study_fields(cluster, uid, changed)
        known = known_studies.get(uid)
        # A document written before projects existed belongs to the default project.
        if known is not None and not changes.studies[uid].projects <= set(
            known.get("projects") or DEFAULT_PROJECTS
        ):
            # The study joined a project: its older series must say so too.
            _update_series_of_study(
                cluster,
                uid,
                PROJECTS_SCRIPT,
                {"projects": sorted(changes.studies[uid].projects), "replace": False},
            )
    _recount(
        cluster,
        [uid for uid in series_uids if changes.series[uid].recount],
        [uid for uid in study_uids if changes.studies[uid].recount],
    )


def set_study_projects(
    cluster: Cluster, study_uid: str, projects: list[str], *, replace: bool
) -> bool:
    """Add the study (and its series) to ``projects``, or make them its only ones."""
    cluster.ensure_indices()
    if cluster.get(cluster.studies, study_uid, ["StudyInstanceUID"]) is None:
        return False
    params = {"projects": sorted(set(projects)), "replace": replace}
    with cluster.unavailable("set the projects of a study"):
        cluster.client.update(
            index=cluster.studies,
            id=study_uid,
            body={"script": {"source": PROJECTS_SCRIPT, "lang": "painless", "params": params}},
            refresh=cluster.refresh,
            retry_on_conflict=CAS_ATTEMPTS,
        )
    _update_series_of_study(cluster, study_uid, PROJECTS_SCRIPT, params)
    return True


def _propagate_study_fields(cluster: Cluster, study_uid: str, values: dict[str, Any]) -> None:
    """Copy changed study fields into every series document of the study (rare: a later
    instance corrected the patient or study fields)."""
    _update_series_of_study(cluster, study_uid, SET_FIELDS_SCRIPT, {"fields": values})


def _update_series_of_study(
    cluster: Cluster, study_uid: str, script: str, params: dict[str, Any]
) -> None:
    """Run ``script`` on every series document of the study, until no write conflicted."""
    body = {
        "query": {"term": {"StudyInstanceUID": study_uid}},
        "script": {"source": script, "lang": "painless", "params": params},
    }
    for _ in range(CAS_ATTEMPTS):
        with cluster.unavailable("update series of a study"):
            result = cluster.client.update_by_query(
                index=cluster.series, body=body, conflicts="proceed", refresh=True
            )
        if not result.get("version_conflicts"):
            return
    raise IndexUnavailable(
        f"{cluster.where}: series of study {study_uid} kept changing while being updated"
    )


def _recount(cluster: Cluster, series_uids: list[str], study_uids: list[str]) -> None:
    """Re-aggregate received-at bounds of series, and last-received and modalities of
    studies, from the documents below them (after a refresh, so that they are visible)."""
    if not series_uids and not study_uids:
        return
    with cluster.unavailable("refresh"):
        cluster.client.indices.refresh(index=f"{cluster.instances},{cluster.series}")
    for uid in series_uids:
        aggs = cluster.aggregate(
            cluster.instances,
            {"term": {"SeriesInstanceUID": uid}},
            {
                "first": {"min": {"field": "received_at"}},
                "last": {"max": {"field": "received_at"}},
            },
        )
        if aggs["first"]["value"] is None:
            continue  # the series is gone
        cluster.update_doc(
            cluster.series,
            uid,
            {
                "first_received_at": aggs["first"]["value"],
                "last_received_at": aggs["last"]["value"],
            },
        )
    if series_uids and study_uids:
        with cluster.unavailable("refresh"):
            cluster.client.indices.refresh(index=cluster.series)
    for uid in study_uids:
        aggs = cluster.aggregate(
            cluster.series,
            {"term": {"StudyInstanceUID": uid}},
            {
                "last": {"max": {"field": "last_received_at"}},
                "modalities": {"terms": {"field": "Modality", "size": 100}},
            },
        )
        if aggs["last"]["value"] is None:
            continue  # the study is gone
        modalities = sorted(b["key"] for b in aggs["modalities"]["buckets"] if b["key"])
        cluster.update_doc(
            cluster.studies,
            uid,
            {"last_received_at": aggs["last"]["value"], "ModalitiesInStudy": modalities},
        )


def _check_series_ownership(
    batch: list[InstanceRecord], known_series: dict[str, dict[str, Any]]
) -> None:
    """Refuse the whole batch if one of its series is already in another study."""
    owner = {uid: doc["StudyInstanceUID"] for uid, doc in known_series.items()}
    for record in batch:
        study = owner.setdefault(record.SeriesInstanceUID, record.StudyInstanceUID)
        if study != record.StudyInstanceUID:
            raise InvalidRecord(
                f"series {record.SeriesInstanceUID} belongs to study {study},"
                f" not {record.StudyInstanceUID}"
            )
