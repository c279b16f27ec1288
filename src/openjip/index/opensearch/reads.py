"""The read path of the OpenSearch backend: each query kind as searches on one index, paged
past the result window, in the order of the contract."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from openjip.index.base import InstanceRecord, Query, RunOutput, SeriesRecord, StudyRecord
from openjip.index.opensearch.cluster import PAGE_SIZE, Cluster
from openjip.index.opensearch.mappings import (
    instance_record,
    run_output,
    series_record,
    study_record,
)
from openjip.index.opensearch.query import (
    IDLE_SORT,
    INSTANCE_SORT,
    RUN_OUTPUT_SORT,
    SERIES_SORT,
    Conditions,
    all_of,
    study_sort,
    terms,
)

SERIES_PER_CHUNK = 1000
"""Series UIDs per instance search when instances are found through their series."""


def get_instance(cluster: Cluster, sop_instance_uid: str) -> InstanceRecord | None:
    """The instance with its header, or ``None``."""
    cluster.ensure_indices()
    doc = cluster.get(cluster.instances, sop_instance_uid)
    return instance_record(doc["_source"]) if doc else None


def find_studies(cluster: Cluster, query: Query) -> list[StudyRecord]:
    """Matching studies in ``query.order`` (missing values first ascending), then UID."""
    conditions = Conditions.of(query)
    cluster.ensure_indices()
    if not conditions.below_study():
        hits = cluster.hits(
            cluster.studies,
            all_of(conditions.study),
            study_sort(query),
            offset=query.offset,
            limit=query.limit,
        )
        return [study_record(hit["_source"]) for hit in hits]
    series_filter = _series_filter(cluster, conditions)
    if series_filter is None:
        return []
    studies: list[StudyRecord] = []
    for uids in _chunks(_distinct_studies(cluster, series_filter, query), PAGE_SIZE):
        docs = cluster.mget(cluster.studies, uids)
        # A study deleted since the aggregation saw its series is left out.
        studies += [study_record(docs[uid]) for uid in uids if uid in docs]
    return studies


def find_series(cluster: Cluster, query: Query) -> list[SeriesRecord]:
    """Matching series ordered by StudyInstanceUID, SeriesNumber (none first), UID."""
    conditions = Conditions.of(query)
    cluster.ensure_indices()
    series_filter = _series_filter(cluster, conditions)
    if series_filter is None:
        return []
    hits = cluster.hits(
        cluster.series, series_filter, SERIES_SORT, offset=query.offset, limit=query.limit
    )
    return [series_record(hit["_source"]) for hit in hits]


def find_instances(
    cluster: Cluster, query: Query, *, with_header: bool = False
) -> list[InstanceRecord]:
    """Matching instances ordered by SeriesInstanceUID, InstanceNumber (none first), UID."""
    conditions = Conditions.of(query)
    cluster.ensure_indices()
    source: Any = True if with_header else {"excludes": ["header"]}
    own = [terms("SOPInstanceUID", conditions.sop_uids)] if conditions.sop_uids else []
    if not (conditions.study or conditions.series or conditions.text):
        hits = cluster.hits(
            cluster.instances,
            all_of(own),
            INSTANCE_SORT,
            offset=query.offset,
            limit=query.limit,
            source=source,
        )
        return [instance_record(hit["_source"]) for hit in hits]
    series_filter = _series_filter(cluster, conditions)
    if series_filter is None:
        return []
    records: list[InstanceRecord] = []
    skip, limit = query.offset, query.limit
    for chunk in _chunks(_series_uids(cluster, series_filter), SERIES_PER_CHUNK):
        if limit is not None and len(records) >= limit:
            break
        chunk_query = all_of([terms("SeriesInstanceUID", chunk), *own])
        if skip:
            count = cluster.count(cluster.instances, chunk_query)
            if count <= skip:
                skip -= count
                continue
        left = None if limit is None else limit - len(records)
        hits = cluster.hits(
            cluster.instances,
            chunk_query,
            INSTANCE_SORT,
            offset=skip,
            limit=left,
            source=source,
        )
        records += [instance_record(hit["_source"]) for hit in hits]
        skip = 0
    return records


def idle_series(cluster: Cluster, received_before: float) -> list[SeriesRecord]:
    """Incomplete series whose last instance arrived before ``received_before``."""
    cluster.ensure_indices()
    query = all_of(
        [
            {"term": {"complete": False}},
            {"range": {"last_received_at": {"lt": received_before}}},
        ]
    )
    hits = cluster.hits(cluster.series, query, IDLE_SORT, offset=0, limit=None)
    return [series_record(hit["_source"]) for hit in hits]


def find_run_outputs(
    cluster: Cluster, *, workflow: str = "", run_id: str = "", series_instance_uid: str = ""
) -> list[RunOutput]:
    """Run outputs matching every given field exactly, by object key."""
    given = {"workflow": workflow, "run_id": run_id, "SeriesInstanceUID": series_instance_uid}
    query = all_of([{"term": {name: {"value": value}}} for name, value in given.items() if value])
    cluster.ensure_indices()
    hits = cluster.hits(cluster.runs, query, RUN_OUTPUT_SORT, offset=0, limit=None)
    return [run_output(hit["_source"]) for hit in hits]


def _series_filter(cluster: Cluster, conditions: Conditions) -> dict[str, Any] | None:
    """The series-index query of the conditions; ``None`` when SOP Instance UIDs were
    asked for and none of them is indexed (nothing can match)."""
    clauses = conditions.study + conditions.series
    if conditions.text:
        clauses.append(conditions.text_clause())
    if conditions.sop_uids:
        series_uids = _series_of_instances(cluster, conditions.sop_uids)
        if not series_uids:
            return None
        clauses.append(terms("SeriesInstanceUID", series_uids))
    return all_of(clauses)


def _series_of_instances(cluster: Cluster, sop_uids: list[str]) -> list[str]:
    with cluster.unavailable("search"):
        found = cluster.client.search(
            index=cluster.instances,
            body={
                "query": all_of([terms("SOPInstanceUID", sop_uids)]),
                "_source": ["SeriesInstanceUID"],
                "size": len(sop_uids),
            },
        )
    return sorted({hit["_source"]["SeriesInstanceUID"] for hit in found["hits"]["hits"]})


def _series_uids(cluster: Cluster, series_filter: dict[str, Any]) -> Iterator[str]:
    """UIDs of the matching series in UID order, fetched page by page as consumed."""
    sort = [{"SeriesInstanceUID": {"order": "asc"}}]
    for hit in cluster.hits(
        cluster.series, series_filter, sort, offset=0, limit=None, source=False
    ):
        yield hit["_id"]


def _distinct_studies(
    cluster: Cluster, series_filter: dict[str, Any], query: Query
) -> Iterator[str]:
    """StudyInstanceUIDs of the matching series in study order (``query.order``, missing
    values first ascending and last descending, then UID), each once: a composite aggregation
    paged by its after-key (series carry the study fields studies are ordered by)."""
    if query.limit == 0:
        return
    key, descending = query.study_order()
    skip, left = query.offset, query.limit
    order = "desc" if descending else "asc"
    after: dict[str, Any] | None = None
    while True:
        composite: dict[str, Any] = {
            "size": PAGE_SIZE,
            "sources": [
                {"by": {"terms": {"field": key, "missing_bucket": True, "order": order}}},
                {"uid": {"terms": {"field": "StudyInstanceUID", "order": "asc"}}},
            ],
        }
        if after is not None:
            composite["after"] = after
        aggs = cluster.aggregate(
            cluster.series, series_filter, {"studies": {"composite": composite}}
        )
        buckets = aggs["studies"]["buckets"]
        for bucket in buckets:
            if skip:
                skip -= 1
                continue
            yield bucket["key"]["uid"]
            if left is not None:
                left -= 1
                if left == 0:
                    return
        after = aggs["studies"].get("after_key")
        if len(buckets) < PAGE_SIZE or after is None:
            return


def _chunks(items: Iterator[str], size: int) -> Iterator[list[str]]:
    chunk: list[str] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
