"""The OpenSearch backend of :class:`MetadataIndex`, for sites whose services run on many nodes.

Four indices (layout and mappings in :mod:`~openjip.index.opensearch.mappings`, query clauses
in :mod:`~openjip.index.opensearch.query`, count updates in
:mod:`~openjip.index.opensearch.counts`, requests in :mod:`~openjip.index.opensearch.cluster`):
``studies``, ``series`` and ``instances``, one document per record, keyed by its UID; and
``runs``, one document per non-DICOM step output, keyed by its object key. Series documents
repeat the study fields a query can name (PatientID, PatientName, StudyDate, AccessionNumber,
StudyDescription), so that every query runs on one index without joins:

* series: one search with study, series and text conditions together;
* studies: a study condition alone searches ``studies``; with series or text conditions a
  composite aggregation over ``series`` yields the distinct (StudyDate, StudyInstanceUID) of the
  matching series in study order, then the studies are fetched by id;
* instances: with study, series or text conditions the matching series are listed in UID order
  and their instances fetched in chunks of series, which keeps the order of
  (SeriesInstanceUID, InstanceNumber, SOPInstanceUID) across chunks.

(:mod:`~openjip.index.opensearch.reads`.) Counts: exact and incremental, as in SQLite, but
without transactions (:mod:`~openjip.index.opensearch.writes`). An instance is written with
``op_type=create``, so that of any number of receivers storing it at once exactly one sees it
created and counts it; the counts, sizes and time bounds of its series and study then change by
scripted upserts (one atomic read-modify-write per document, retried on version conflicts).
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

from typing import TYPE_CHECKING

from opensearchpy import OpenSearch
from opensearchpy.connection import Connection, Urllib3HttpConnection

import openjip.index.opensearch.reads as reads
import openjip.index.opensearch.writes as writes
from openjip.index.base import (
    IndexUnavailable,
    InstanceRecord,
    MetadataIndex,
    Query,
    RunOutput,
    SeriesRecord,
    StudyRecord,
)
from openjip.index.opensearch.cluster import Cluster, without_credentials

if TYPE_CHECKING:
    from openjip.config.settings import IndexSettings

HTTP_CONNECTIONS = 32
"""Connections kept to the cluster: one per thread writing at once (receiver associations,
DICOMweb requests) before threads queue for one; urllib3's default is 10."""


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
        self.cluster = Cluster(
            client, prefix=prefix, refresh=refresh, shards=shards, replicas=replicas, where=where
        )

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
            where=f"OpenSearch {without_credentials(settings.opensearch_url)}",
        )

    def __repr__(self) -> str:
        return f"OpenSearchIndex({self.cluster.where!r}, prefix={self.cluster.prefix!r})"

    # -- writing -----------------------------------------------------------------------------

    def upsert_instances(self, records: list[InstanceRecord]) -> int:
        """Create or replace the instances, then change the counts of their series and studies."""
        return writes.upsert_instances(self.cluster, records)

    def delete_instance(self, sop_instance_uid: str) -> bool:
        """Delete the instance document under CAS; its series and study counts follow."""
        return writes.delete_instance(self.cluster, sop_instance_uid)

    def mark_series_complete(
        self, series_instance_uid: str, last_received_at: float
    ) -> SeriesRecord | None:
        """Compare-and-set on the series document's sequence number: of concurrent sweepers
        that read the same version, only the first write succeeds; the others get 409."""
        return writes.mark_series_complete(self.cluster, series_instance_uid, last_received_at)

    def set_study_projects(
        self, study_instance_uid: str, projects: list[str], *, replace: bool = False
    ) -> bool:
        """Add the study and its series to ``projects`` (or make them their only ones)."""
        return writes.set_study_projects(
            self.cluster, study_instance_uid, projects, replace=replace
        )

    def add_run_outputs(self, outputs: list[RunOutput]) -> None:
        """Index the outputs in one bulk request; the object key is the document id, so
        recording a key again replaces its document."""
        writes.add_run_outputs(self.cluster, outputs)

    def clear(self) -> None:
        """Delete the indices, run outputs included, and create them again (from the
        templates)."""
        cluster = self.cluster
        cluster.refuse_newer_templates()  # a newer openjip's indices are not ours to delete
        with cluster.unavailable("clear"):
            cluster.client.indices.delete(index=cluster.all_indices, ignore_unavailable=True)
        cluster.forget_indices()
        cluster.ensure_indices()

    # -- reading -----------------------------------------------------------------------------

    def get_instance(self, sop_instance_uid: str) -> InstanceRecord | None:
        """The instance with its header, or ``None``."""
        return reads.get_instance(self.cluster, sop_instance_uid)

    def find_studies(self, query: Query) -> list[StudyRecord]:
        """Matching studies ordered by StudyDate (none first), then StudyInstanceUID."""
        return reads.find_studies(self.cluster, query)

    def find_series(self, query: Query) -> list[SeriesRecord]:
        """Matching series ordered by StudyInstanceUID, SeriesNumber (none first), UID."""
        return reads.find_series(self.cluster, query)

    def find_instances(self, query: Query, *, with_header: bool = False) -> list[InstanceRecord]:
        """Matching instances ordered by SeriesInstanceUID, InstanceNumber (none first), UID."""
        return reads.find_instances(self.cluster, query, with_header=with_header)

    def idle_series(self, received_before: float) -> list[SeriesRecord]:
        """Incomplete series whose last instance arrived before ``received_before``."""
        return reads.idle_series(self.cluster, received_before)

    def find_run_outputs(
        self, *, workflow: str = "", run_id: str = "", series_instance_uid: str = ""
    ) -> list[RunOutput]:
        """Run outputs matching every given field exactly, by object key."""
        return reads.find_run_outputs(
            self.cluster,
            workflow=workflow,
            run_id=run_id,
            series_instance_uid=series_instance_uid,
        )

    # -- health and lifetime -----------------------------------------------------------------

    def check(self) -> None:
        """Raise IndexUnavailable unless the cluster answers and the indices are not red."""
        cluster = self.cluster
        cluster.ensure_indices()
        with cluster.unavailable("cluster health"):
            health = cluster.client.cluster.health(index=cluster.all_indices)
        status = health.get("status")
        if status not in ("green", "yellow"):
            raise IndexUnavailable(
                f"{cluster.where}: indices {cluster.prefix}-* are {status}"
                f" ({health.get('unassigned_shards', '?')} shards unassigned)"
            )

    def close(self) -> None:
        """Close the client's HTTP connections."""
        self.cluster.client.close()
