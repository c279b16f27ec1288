"""The OpenSearch backend of :class:`MetadataIndex`, for sites whose services run on many nodes.

Four indices (layout and mappings in :mod:`openjip.index.opensearch_mappings`, query clauses
in :mod:`~openjip.index.opensearch_query`, count updates in
:mod:`~openjip.index.opensearch_counts`): ``studies``,
``series`` and ``instances``, one document per record, keyed by its UID; and ``runs``, one
document per non-DICOM step output, keyed by its object key. Series documents repeat
the study fields a query can name (PatientID, PatientName, StudyDate, AccessionNumber,
StudyDescription), so that every query runs on one index without joins:

* series: one search with study, series and text conditions together;
* studies: a study condition alone searches ``studies``; with series or text conditions a
  composite aggregation over ``series`` yields the distinct (StudyDate, StudyInstanceUID) of the
  matching series in study order, then the studies are fetched by id;
* instances: with study, series or text conditions the matching series are listed in UID order
  and their instances fetched in chunks of series, which keeps the order of
  (SeriesInstanceUID, InstanceNumber, SOPInstanceUID) across chunks.

Counts: exact and incremental, as in SQLite, but without transactions. An instance is written
with ``op_type=create``, so that of any number of receivers storing it at once exactly one sees
it created and counts it; the counts, sizes and time bounds of its series and study then change
by scripted upserts (one atomic read-modify-write per document, retried on version conflicts).
Re-receiving an instance replaces it under ``if_seq_no``/``if_primary_term`` and changes the
size by the difference. Only time bounds that must shrink (an instance deleted, or re-received
with another time) and the modalities of a study that lost a series are re-aggregated from the
documents, after a refresh; a new instance of the same series landing during that re-aggregation
can leave its bound stale until the next instance of the series. A failure between writing the
instance and counting it leaves that instance uncounted: ``openjip index rebuild`` recounts.

Visibility: writes are searchable after OpenSearch's refresh interval (1 s by default) unless
``opensearch_refresh`` asks for ``wait_for`` or ``true``; reads by id are immediate.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from opensearchpy import OpenSearch
from opensearchpy.connection import Connection, Urllib3HttpConnection
from opensearchpy.exceptions import (
    AuthenticationException,
    AuthorizationException,
    ConflictError,
    NotFoundError,
    RequestError,
    TransportError,
)
from opensearchpy.exceptions import ConnectionError as TransportConnectionError

from openjip.index.base import (
    IndexUnavailable,
    InstanceRecord,
    InvalidRecord,
    MetadataIndex,
    Query,
    RunOutput,
    SeriesRecord,
    StudyRecord,
    require_uids,
)
from openjip.index.opensearch_counts import (
    RETRY_ON_CONFLICT,
    SET_FIELDS_SCRIPT,
    Changes,
    changed_fields,
)
from openjip.index.opensearch_mappings import (
    KINDS,
    PROPERTIES,
    index_name,
    index_template,
    instance_record,
    run_output,
    series_record,
    study_record,
    to_document,
)
from openjip.index.opensearch_query import (
    IDLE_SORT,
    INSTANCE_SORT,
    RUN_OUTPUT_SORT,
    SERIES_SORT,
    STUDY_SORT,
    Conditions,
    all_of,
    terms,
)

if TYPE_CHECKING:
    from openjip.config.settings import IndexSettings

PAGE_SIZE = 1000
"""Hits fetched per search request while paging through a result."""
MAX_RESULT_WINDOW = 10_000
"""OpenSearch's default ``index.max_result_window``: ``from + size`` may not exceed it."""
SERIES_PER_CHUNK = 1000
"""Series UIDs per instance search when instances are found through their series."""
CAS_ATTEMPTS = 10
"""Attempts to replace or delete an instance that other writers keep changing."""
HTTP_CONNECTIONS = 32
"""Connections kept to the cluster: one per thread writing at once (receiver associations,
DICOMweb requests) before threads queue for one; urllib3's default is 10."""
MAX_ID_BYTES = 512
"""OpenSearch's limit on a document ``_id`` (run outputs are keyed by their object key)."""
UNAVAILABLE_STATUSES = {429, 500, 502, 503, 504}
"""HTTP statuses meaning the cluster cannot serve now (rather than a bad request of ours)."""


class OpenSearchIndex(MetadataIndex):
    """The metadata index in four OpenSearch indices; one client, safe to share between threads.

    Nothing is sent until the first call; that call puts the index templates and creates the
    indices if they are missing, so an unreachable cluster shows up as :class:`IndexUnavailable`
    from the call that needs it (``check()`` for health probes).
    """

    def __init__(
        self,
        client: OpenSearch,
        *,
        prefix: str = "openjip",
        refresh: str = "false",
        shards: int = 1,
        replicas: int = 0,
        where: str = "OpenSearch",
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.refresh = refresh
        self.shards = shards
        self.replicas = replicas
        self.where = where
        self.studies, self.series, self.instances, self.runs = (
            index_name(prefix, k) for k in KINDS
        )
        self.all_indices = ",".join(index_name(prefix, k) for k in KINDS)
        self._ready = False
        self._ready_lock = threading.Lock()

    @classmethod
    def from_settings(
        cls,
        settings: IndexSettings,
        *,
        connection_class: type[Connection] = Urllib3HttpConnection,
    ) -> OpenSearchIndex:
        """The index the settings describe (``connection_class`` replaces the HTTP layer)."""
        password = settings.opensearch_password.get_secret_value()
        client = OpenSearch(
            hosts=[settings.opensearch_url],
            http_auth=(settings.opensearch_username, password)
            if settings.opensearch_username
            else None,
            verify_certs=settings.opensearch_verify_certs,
            ca_certs=str(settings.opensearch_ca_certs) if settings.opensearch_ca_certs else None,
            timeout=settings.opensearch_timeout_seconds,
            pool_maxsize=HTTP_CONNECTIONS,
            connection_class=connection_class,
        )
        return cls(
            client,
            prefix=settings.opensearch_index_prefix,
            refresh=settings.opensearch_refresh,
            shards=settings.opensearch_shards,
            replicas=settings.opensearch_replicas,
            where=f"OpenSearch {_without_credentials(settings.opensearch_url)}",
        )

    def __repr__(self) -> str:
        return f"OpenSearchIndex({self.where!r}, prefix={self.prefix!r})"

    # -- writing -----------------------------------------------------------------------------

    def upsert_instances(self, records: list[InstanceRecord]) -> int:
        """Create or replace the instances, then change the counts of their series and studies."""
        for record in records:
            require_uids(record)
        batch = list({record.SOPInstanceUID: record for record in records}.values())
        if not batch:
            return 0
        self._ensure_indices()
        known_series, known_studies = self._known(batch)
        _check_series_ownership(batch, known_series)

        changes = Changes()
        new = 0
        refused: list[str] = []
        for record, item in zip(batch, self._create_instances(batch), strict=True):
            if item["status"] == 201:
                changes.add(record)
                new += 1
            elif item["status"] == 409:
                new += self._replace_instance(record, changes)
            else:
                refused.append(f"{record.SOPInstanceUID} ({_item_reason(item)})")
        # Count what was written even when some of the batch was refused.
        self._apply(changes, known_studies)
        if refused:
            raise InvalidRecord(f"{self.where} refused instances: {', '.join(refused)}")
        return new

    def delete_instance(self, sop_instance_uid: str) -> bool:
        """Delete the instance document under CAS; its series and study counts follow."""
        self._ensure_indices()
        for _ in range(CAS_ATTEMPTS):
            old = self._get(self.instances, sop_instance_uid, _OLD_INSTANCE_FIELDS)
            if old is None:
                return False
            try:
                with self._unavailable("delete instance"):
                    self.client.delete(
                        index=self.instances,
                        id=sop_instance_uid,
                        if_seq_no=old["_seq_no"],
                        if_primary_term=old["_primary_term"],
                        refresh=self.refresh,
                    )
            except ConflictError:
                continue
            except NotFoundError:
                return False
            changes = Changes()
            changes.remove(old["_source"])
            self._apply(changes, {})
            return True
        raise IndexUnavailable(
            f"{self.where}: instance {sop_instance_uid} kept changing while being deleted"
        )

    def mark_series_complete(
        self, series_instance_uid: str, last_received_at: float
    ) -> SeriesRecord | None:
        """Compare-and-set on the series document's sequence number: of concurrent sweepers
        that read the same version, only the first write succeeds; the others get 409."""
        self._ensure_indices()
        doc = self._get(self.series, series_instance_uid)
        if doc is None:
            return None
        source = doc["_source"]
        if source.get("complete") or source.get("last_received_at") != last_received_at:
            return None
        change = {"complete": True, "version": int(source.get("version", 0)) + 1}
        try:
            with self._unavailable("mark series complete"):
                self.client.update(
                    index=self.series,
                    id=series_instance_uid,
                    body={"doc": change},
                    if_seq_no=doc["_seq_no"],
                    if_primary_term=doc["_primary_term"],
                    refresh=self.refresh,
                )
        except (ConflictError, NotFoundError):
            return None
        return series_record({**source, **change})

    def clear(self) -> None:
        """Delete the indices, run outputs included, and create them again (from the
        templates)."""
        with self._unavailable("clear"):
            self.client.indices.delete(index=self.all_indices, ignore_unavailable=True)
        with self._ready_lock:
            self._ready = False
        self._ensure_indices()

    # -- reading -----------------------------------------------------------------------------

    def get_instance(self, sop_instance_uid: str) -> InstanceRecord | None:
        """The instance with its header, or ``None``."""
        self._ensure_indices()
        doc = self._get(self.instances, sop_instance_uid)
        return instance_record(doc["_source"]) if doc else None

    def find_studies(self, query: Query) -> list[StudyRecord]:
        """Matching studies ordered by StudyDate (none first), then StudyInstanceUID."""
        conditions = Conditions.of(query)
        self._ensure_indices()
        if not conditions.below_study():
            hits = self._hits(
                self.studies,
                all_of(conditions.study),
                STUDY_SORT,
                offset=query.offset,
                limit=query.limit,
            )
            return [study_record(hit["_source"]) for hit in hits]
        series_filter = self._series_filter(conditions)
        if series_filter is None:
            return []
        studies: list[StudyRecord] = []
        for uids in _chunks(
            self._distinct_studies(series_filter, query.offset, query.limit), PAGE_SIZE
        ):
            docs = self._mget(self.studies, uids)
            # A study deleted since the aggregation saw its series is left out.
            studies += [study_record(docs[uid]) for uid in uids if uid in docs]
        return studies

    def find_series(self, query: Query) -> list[SeriesRecord]:
        """Matching series ordered by StudyInstanceUID, SeriesNumber (none first), UID."""
        conditions = Conditions.of(query)
        self._ensure_indices()
        series_filter = self._series_filter(conditions)
        if series_filter is None:
            return []
        hits = self._hits(
            self.series, series_filter, SERIES_SORT, offset=query.offset, limit=query.limit
        )
        return [series_record(hit["_source"]) for hit in hits]

    def find_instances(self, query: Query, *, with_header: bool = False) -> list[InstanceRecord]:
        """Matching instances ordered by SeriesInstanceUID, InstanceNumber (none first), UID."""
        conditions = Conditions.of(query)
        self._ensure_indices()
        source: Any = True if with_header else {"excludes": ["header"]}
        own = [terms("SOPInstanceUID", conditions.sop_uids)] if conditions.sop_uids else []
        if not (conditions.study or conditions.series or conditions.text):
            hits = self._hits(
                self.instances,
                all_of(own),
                INSTANCE_SORT,
                offset=query.offset,
                limit=query.limit,
                source=source,
            )
            return [instance_record(hit["_source"]) for hit in hits]
        series_filter = self._series_filter(conditions)
        if series_filter is None:
            return []
        records: list[InstanceRecord] = []
        skip, limit = query.offset, query.limit
        for chunk in _chunks(self._series_uids(series_filter), SERIES_PER_CHUNK):
            if limit is not None and len(records) >= limit:
                break
            chunk_query = all_of([terms("SeriesInstanceUID", chunk), *own])
            if skip:
                count = self._count(self.instances, chunk_query)
                if count <= skip:
                    skip -= count
                    continue
            left = None if limit is None else limit - len(records)
            hits = self._hits(
                self.instances,
                chunk_query,
                INSTANCE_SORT,
                offset=skip,
                limit=left,
                source=source,
            )
            records += [instance_record(hit["_source"]) for hit in hits]
            skip = 0
        return records

    def idle_series(self, received_before: float) -> list[SeriesRecord]:
        """Incomplete series whose last instance arrived before ``received_before``."""
        self._ensure_indices()
        query = all_of(
            [
                {"term": {"complete": False}},
                {"range": {"last_received_at": {"lt": received_before}}},
            ]
        )
        hits = self._hits(self.series, query, IDLE_SORT, offset=0, limit=None)
        return [series_record(hit["_source"]) for hit in hits]

    # -- run outputs (non-DICOM results of analysis steps) ----------------------------------

    def add_run_outputs(self, outputs: list[RunOutput]) -> None:
        """Index the outputs in one bulk request; the object key is the document id, so
        recording a key again replaces its document."""
        too_long = [o.object_key for o in outputs if len(o.object_key.encode()) > MAX_ID_BYTES]
        if too_long:
            raise InvalidRecord(
                f"{self.where} takes object keys of at most {MAX_ID_BYTES} bytes as run outputs:"
                f" {', '.join(too_long)}"
            )
        if not outputs:
            return
        self._ensure_indices()
        actions: list[dict[str, Any]] = []
        for output in outputs:
            actions.append({"index": {"_index": self.runs, "_id": output.object_key}})
            actions.append(output.to_dict())
        self._bulk(actions, "write run outputs", expected=set())

    def find_run_outputs(
        self, *, workflow: str = "", run_id: str = "", series_instance_uid: str = ""
    ) -> list[RunOutput]:
        """Run outputs matching every given field exactly, by object key."""
        given = {"workflow": workflow, "run_id": run_id, "SeriesInstanceUID": series_instance_uid}
        query = all_of(
            [{"term": {name: {"value": value}}} for name, value in given.items() if value]
        )
        self._ensure_indices()
        hits = self._hits(self.runs, query, RUN_OUTPUT_SORT, offset=0, limit=None)
        return [run_output(hit["_source"]) for hit in hits]

    # -- health and lifetime -----------------------------------------------------------------

    def check(self) -> None:
        """Raise IndexUnavailable unless the cluster answers and the indices are not red."""
        self._ensure_indices()
        with self._unavailable("cluster health"):
            health = self.client.cluster.health(index=self.all_indices)
        status = health.get("status")
        if status not in ("green", "yellow"):
            raise IndexUnavailable(
                f"{self.where}: indices {self.prefix}-* are {status}"
                f" ({health.get('unassigned_shards', '?')} shards unassigned)"
            )

    def close(self) -> None:
        """Close the client's HTTP connections."""
        self.client.close()

    # -- setup -------------------------------------------------------------------------------

    def _ensure_indices(self) -> None:
        """Put the templates and create missing indices, once per handle; an index that exists
        gets the fields this version maps added (adding fields is all a mapping allows)."""
        if self._ready:
            return
        with self._ready_lock:
            if self._ready:
                return
            for kind in KINDS:
                name = index_name(self.prefix, kind)
                template = index_template(
                    self.prefix, kind, shards=self.shards, replicas=self.replicas
                )
                try:
                    with self._unavailable("create indices"):
                        self.client.indices.put_index_template(name=name, body=template)
                        if self.client.indices.exists(index=name):
                            self.client.indices.put_mapping(
                                index=name, body={"properties": PROPERTIES[kind]}
                            )
                        else:
                            self.client.indices.create(index=name)
                except RequestError as exc:
                    if exc.error == "resource_already_exists_exception":
                        continue  # another process created it just now, from the template
                    raise IndexUnavailable(
                        f"{self.where}: index {name} does not take this openjip's mapping"
                        f" ({exc.error}: {_reason(exc)}); delete the {self.prefix}-* indices"
                        " and run `openjip index rebuild`"
                    ) from exc
            self._ready = True

    # -- the write path ----------------------------------------------------------------------

    def _known(
        self, batch: list[InstanceRecord]
    ) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
        """The series and studies of the batch that exist, by UID, in one request."""
        series_uids = sorted({r.SeriesInstanceUID for r in batch})
        study_uids = sorted({r.StudyInstanceUID for r in batch})
        docs = [{"_index": self.series, "_id": uid} for uid in series_uids]
        docs += [{"_index": self.studies, "_id": uid} for uid in study_uids]
        with self._unavailable("read series and studies"):
            found = self.client.mget(body={"docs": docs})["docs"]
        series: dict[str, dict[str, Any]] = {}
        studies: dict[str, dict[str, Any]] = {}
        for doc in found:
            if doc.get("found"):
                (series if doc["_index"] == self.series else studies)[doc["_id"]] = doc["_source"]
        return series, studies

    def _create_instances(self, batch: list[InstanceRecord]) -> list[dict[str, Any]]:
        """Write each instance with op_type create; the result of each: 201 created, 409 it
        existed already, another 4xx the document was refused (bad data)."""
        actions: list[dict[str, Any]] = []
        for record in batch:
            actions.append({"create": {"_index": self.instances, "_id": record.SOPInstanceUID}})
            actions.append(to_document(record))
        return self._bulk(actions, "write instances", expected=set(range(400, 500)) - {429})

    def _replace_instance(self, record: InstanceRecord, changes: Changes) -> int:
        """Replace an existing instance under CAS and record how its series change; 1 if it
        moved to another series (and so counts as new there), else 0."""
        for _ in range(CAS_ATTEMPTS):
            old = self._get(self.instances, record.SOPInstanceUID, _OLD_INSTANCE_FIELDS)
            cas: dict[str, Any] = (
                {"if_seq_no": old["_seq_no"], "if_primary_term": old["_primary_term"]}
                if old
                else {"op_type": "create"}
            )
            try:
                with self._unavailable("replace instance"):
                    self.client.index(
                        index=self.instances,
                        id=record.SOPInstanceUID,
                        body=to_document(record),
                        refresh=self.refresh,
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
            f"{self.where}: instance {record.SOPInstanceUID} kept changing while being replaced"
        )

    def _apply(self, changes: Changes, known_studies: dict[str, dict[str, Any]]) -> None:
        """Send the series changes, then the study changes they imply, then propagate changed
        study fields and re-aggregate bounds that may have shrunk."""
        series_uids = list(changes.series)
        if series_uids:
            actions: list[dict[str, Any]] = []
            for uid in series_uids:
                change = changes.series[uid]
                actions += change.actions(self.series, uid, known_studies.get(change.study_uid))
            items = self._bulk(actions, "count series", expected={404})
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
                actions += changes.studies[uid].actions(self.studies, uid)
            self._bulk(actions, "count studies", expected={404})
        for uid in study_uids:
            changed = changed_fields(changes.studies[uid].fields, known_studies.get(uid))
            if changed:
                self._propagate_study_fields(uid, changed)
        self._recount(
            [uid for uid in series_uids if changes.series[uid].recount],
            [uid for uid in study_uids if changes.studies[uid].recount],
        )

    def _propagate_study_fields(self, study_uid: str, values: dict[str, Any]) -> None:
        """Copy changed study fields into every series document of the study (rare: a later
        instance corrected the patient or study fields)."""
        body = {
            "query": {"term": {"StudyInstanceUID": study_uid}},
            "script": {
                "source": SET_FIELDS_SCRIPT,
                "lang": "painless",
                "params": {"fields": values},
            },
        }
        for _ in range(CAS_ATTEMPTS):
            with self._unavailable("update series of a study"):
                result = self.client.update_by_query(
                    index=self.series, body=body, conflicts="proceed", refresh=True
                )
            if not result.get("version_conflicts"):
                return
        raise IndexUnavailable(
            f"{self.where}: series of study {study_uid} kept changing while being updated"
        )

    def _recount(self, series_uids: list[str], study_uids: list[str]) -> None:
        """Re-aggregate received-at bounds of series, and last-received and modalities of
        studies, from the documents below them (after a refresh, so that they are visible)."""
        if not series_uids and not study_uids:
            return
        with self._unavailable("refresh"):
            self.client.indices.refresh(index=f"{self.instances},{self.series}")
        for uid in series_uids:
            aggs = self._aggregate(
                self.instances,
                {"term": {"SeriesInstanceUID": uid}},
                {
                    "first": {"min": {"field": "received_at"}},
                    "last": {"max": {"field": "received_at"}},
                },
            )
            if aggs["first"]["value"] is None:
                continue  # the series is gone
            self._update_doc(
                self.series,
                uid,
                {
                    "first_received_at": aggs["first"]["value"],
                    "last_received_at": aggs["last"]["value"],
                },
            )
        if series_uids and study_uids:
            with self._unavailable("refresh"):
                self.client.indices.refresh(index=self.series)
        for uid in study_uids:
            aggs = self._aggregate(
                self.series,
                {"term": {"StudyInstanceUID": uid}},
                {
                    "last": {"max": {"field": "last_received_at"}},
                    "modalities": {"terms": {"field": "Modality", "size": 100}},
                },
            )
            if aggs["last"]["value"] is None:
                continue  # the study is gone
            modalities = sorted(b["key"] for b in aggs["modalities"]["buckets"] if b["key"])
            self._update_doc(
                self.studies,
                uid,
                {"last_received_at": aggs["last"]["value"], "ModalitiesInStudy": modalities},
            )

    # -- the read path -----------------------------------------------------------------------

    def _series_filter(self, conditions: Conditions) -> dict[str, Any] | None:
        """The series-index query of the conditions; ``None`` when SOP Instance UIDs were
        asked for and none of them is indexed (nothing can match)."""
        clauses = conditions.study + conditions.series
        if conditions.text:
            clauses.append(conditions.text_clause())
        if conditions.sop_uids:
            series_uids = self._series_of_instances(conditions.sop_uids)
            if not series_uids:
                return None
            clauses.append(terms("SeriesInstanceUID", series_uids))
        return all_of(clauses)

    def _series_of_instances(self, sop_uids: list[str]) -> list[str]:
        with self._unavailable("search"):
            found = self.client.search(
                index=self.instances,
                body={
                    "query": all_of([terms("SOPInstanceUID", sop_uids)]),
                    "_source": ["SeriesInstanceUID"],
                    "size": len(sop_uids),
                },
            )
        return sorted({hit["_source"]["SeriesInstanceUID"] for hit in found["hits"]["hits"]})

    def _series_uids(self, series_filter: dict[str, Any]) -> Iterator[str]:
        """UIDs of the matching series in UID order, fetched page by page as consumed."""
        sort = [{"SeriesInstanceUID": {"order": "asc"}}]
        for hit in self._hits(self.series, series_filter, sort, offset=0, limit=None, source=False):
            yield hit["_id"]

    def _distinct_studies(
        self, series_filter: dict[str, Any], offset: int, limit: int | None
    ) -> Iterator[str]:
        """StudyInstanceUIDs of the matching series in study order (StudyDate, none first, then
        UID), each once: a composite aggregation paged by its after-key."""
        if limit == 0:
            return
        skip, left = offset, limit
        after: dict[str, Any] | None = None
        while True:
            composite: dict[str, Any] = {
                "size": PAGE_SIZE,
                "sources": [
                    {
                        "date": {
                            "terms": {"field": "StudyDate", "missing_bucket": True, "order": "asc"}
                        }
                    },
                    {"uid": {"terms": {"field": "StudyInstanceUID", "order": "asc"}}},
                ],
            }
            if after is not None:
                composite["after"] = after
            aggs = self._aggregate(
                self.series, series_filter, {"studies": {"composite": composite}}
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

    def _hits(
        self,
        index: str,
        query: dict[str, Any],
        sort: list[Any],
        *,
        offset: int,
        limit: int | None,
        source: Any = True,
    ) -> Iterator[dict[str, Any]]:
        """The hits of a sorted search from ``offset``, at most ``limit``: the first page by
        ``from`` (while within the result window), the next ones by ``search_after`` on the sort
        values. Every sort ends in a UID, so pages neither overlap nor leave gaps."""
        if limit == 0:
            return
        first_size = PAGE_SIZE if limit is None else min(PAGE_SIZE, limit)
        start = offset if offset + first_size <= MAX_RESULT_WINDOW else 0
        skip, left = offset - start, limit
        after: list[Any] | None = None
        while True:
            size = PAGE_SIZE if left is None or skip else min(PAGE_SIZE, left)
            body: dict[str, Any] = {
                "query": query,
                "sort": sort,
                "size": size,
                "_source": source,
                "track_total_hits": False,
            }
            if after is None:
                if start:
                    body["from"] = start
            else:
                body["search_after"] = after
            with self._unavailable("search"):
                hits = self.client.search(index=index, body=body)["hits"]["hits"]
            for hit in hits:
                if skip:
                    skip -= 1
                    continue
                yield hit
                if left is not None:
                    left -= 1
                    if left == 0:
                        return
            if len(hits) < size:
                return
            after = hits[-1]["sort"]

    def _count(self, index: str, query: dict[str, Any]) -> int:
        with self._unavailable("count"):
            return int(self.client.count(index=index, body={"query": query})["count"])

    def _aggregate(self, index: str, query: dict[str, Any], aggs: dict[str, Any]) -> dict[str, Any]:
        with self._unavailable("aggregate"):
            result = self.client.search(
                index=index,
                body={"query": query, "size": 0, "track_total_hits": False, "aggs": aggs},
            )
        return dict(result["aggregations"])

    # -- requests ----------------------------------------------------------------------------

    def _get(
        self, index: str, doc_id: str, source: list[str] | None = None
    ) -> dict[str, Any] | None:
        """One document with its sequence number and primary term, or ``None``."""
        params = {"_source_includes": ",".join(source)} if source else {}
        try:
            with self._unavailable("get"):
                return dict(self.client.get(index=index, id=doc_id, params=params))
        except NotFoundError:
            return None

    def _mget(self, index: str, doc_ids: list[str]) -> dict[str, dict[str, Any]]:
        with self._unavailable("get"):
            docs = self.client.mget(index=index, body={"ids": doc_ids})["docs"]
        return {doc["_id"]: doc["_source"] for doc in docs if doc.get("found")}

    def _update_doc(self, index: str, doc_id: str, values: dict[str, Any]) -> None:
        try:
            with self._unavailable("update"):
                self.client.update(
                    index=index,
                    id=doc_id,
                    body={"doc": values},
                    retry_on_conflict=RETRY_ON_CONFLICT,
                    refresh=self.refresh,
                )
        except NotFoundError:
            pass  # removed meanwhile: nothing left to correct

    def _bulk(
        self, actions: list[dict[str, Any]], what: str, *, expected: set[int]
    ) -> list[dict[str, Any]]:
        """Send a bulk request; return each action's result (in order). Item failures other than
        the ``expected`` statuses raise: 429/5xx as IndexUnavailable, anything else as a bug."""
        with self._unavailable(what):
            response = self.client.bulk(body=actions, refresh=self.refresh)
        items = [next(iter(item.values())) for item in response["items"]]
        for item in items:
            status = item.get("status", 0)
            if status < 300 or status in expected:
                continue
            if status in UNAVAILABLE_STATUSES or status == 409:  # 409: conflicts outlasted retries
                raise IndexUnavailable(f"{self.where}: {what}: {status} {_item_reason(item)}")
            raise RuntimeError(f"{self.where}: {what} refused: {status} {_item_reason(item)}")
        return items

    @contextmanager
    def _unavailable(self, what: str) -> Iterator[None]:
        """Turn failures of the cluster (unreachable, timeout, overloaded, refused credentials)
        into IndexUnavailable; 404 and 409 pass through for callers that expect them, other
        client errors mean a bug in this module and stay what they are."""
        try:
            yield
        except TransportConnectionError as exc:
            raise IndexUnavailable(f"{self.where}: {what}: {exc.error}") from exc
        except (AuthenticationException, AuthorizationException) as exc:
            raise IndexUnavailable(
                f"{self.where}: {what}: credentials refused ({exc.status_code})"
            ) from exc
        except TransportError as exc:
            if exc.status_code in UNAVAILABLE_STATUSES:
                raise IndexUnavailable(
                    f"{self.where}: {what}: {exc.status_code} {exc.error}"
                ) from exc
            raise


_OLD_INSTANCE_FIELDS = ["SeriesInstanceUID", "StudyInstanceUID", "size", "received_at"]


def _chunks(items: Iterator[str], size: int) -> Iterator[list[str]]:
    chunk: list[str] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


# -- checks and messages -----------------------------------------------------------------------


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


def _item_reason(item: dict[str, Any]) -> str:
    """What a bulk item's error says."""
    error = item.get("error")
    if isinstance(error, dict):
        return f"{error.get('type', '')}: {error.get('reason', '')}"
    return str(error or item.get("status"))


def _reason(exc: TransportError) -> str:
    """The reason OpenSearch gave for refusing a request."""
    info = exc.info if isinstance(exc.info, dict) else {}
    error = info.get("error")
    return str(error.get("reason", "")) if isinstance(error, dict) else str(info or "")


def _without_credentials(url: str) -> str:
    """The URL as it may appear in messages and logs."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=host))
