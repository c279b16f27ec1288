"""The four OpenSearch indices of one site and the requests the backend sends them: templates
and mappings put on first use (refused when a newer openjip's templates are there), paged
searches, bulk writes, and the cluster's failures as :class:`IndexUnavailable`."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from opensearchpy import OpenSearch
from opensearchpy.exceptions import (
    AuthenticationException,
    AuthorizationException,
    NotFoundError,
    RequestError,
    TransportError,
)
from opensearchpy.exceptions import ConnectionError as TransportConnectionError

from openjip.index.base import IndexUnavailable
from openjip.index.opensearch.counts import RETRY_ON_CONFLICT
from openjip.index.opensearch.mappings import (
    KINDS,
    PROPERTIES,
    TEMPLATE_VERSION,
    index_name,
    index_template,
)

PAGE_SIZE = 1000
"""Hits fetched per search request while paging through a result."""
MAX_RESULT_WINDOW = 10_000
"""OpenSearch's default ``index.max_result_window``: ``from + size`` may not exceed it."""
UNAVAILABLE_STATUSES = {429, 500, 502, 503, 504}
"""HTTP statuses meaning the cluster cannot serve now (rather than a bad request of ours)."""


class Cluster:
    """One client and the names of the site's indices on it; safe to share between threads."""

    def __init__(
        self,
        client: OpenSearch,
        *,
        prefix: str,
        refresh: str,
        shards: int,
        replicas: int,
        where: str,
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

    def forget_indices(self) -> None:
        """Make the next call put the templates and create the indices again."""
        with self._ready_lock:
            self._ready = False

    def ensure_indices(self) -> None:
        """Put the templates and create missing indices, once per handle; an index that exists
        gets the fields this version maps added (adding fields is all a mapping allows)."""
        if self._ready:
            return
        with self._ready_lock:
            if self._ready:
                return
            self.refuse_newer_templates()
            for kind in KINDS:
                name = index_name(self.prefix, kind)
                template = index_template(
                    self.prefix, kind, shards=self.shards, replicas=self.replicas
                )
                try:
                    with self.unavailable("create indices"):
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

    def template_versions(self) -> dict[str, int]:
        """Schema version of each of the site's templates on the cluster (absent: not put yet)."""
        with self.unavailable("read the index templates"):
            try:
                found = self.client.indices.get_index_template(name=f"{self.prefix}-*")
            except NotFoundError:
                return {}
        ours = {index_name(self.prefix, kind) for kind in KINDS}
        return {
            entry["name"]: int(entry.get("index_template", {}).get("version") or 1)
            for entry in found.get("index_templates", [])
            if entry.get("name") in ours
        }

    def refuse_newer_templates(self) -> None:
        """Before anything is written: templates a newer openjip put are left as they are."""
        for name, version in sorted(self.template_versions().items()):
            if version > TEMPLATE_VERSION:
                raise IndexUnavailable(
                    f"{self.where}: the index template {name} is at schema version {version},"
                    f" newer than version {TEMPLATE_VERSION} that this openjip knows; it was"
                    " put by a newer openjip: upgrade openjip again (or restore a backup made"
                    " before the upgrade). Nothing was changed."
                )

    def hits(
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
            with self.unavailable("search"):
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

    def count(self, index: str, query: dict[str, Any]) -> int:
        with self.unavailable("count"):
            return int(self.client.count(index=index, body={"query": query})["count"])

    def aggregate(self, index: str, query: dict[str, Any], aggs: dict[str, Any]) -> dict[str, Any]:
        with self.unavailable("aggregate"):
            result = self.client.search(
                index=index,
                body={"query": query, "size": 0, "track_total_hits": False, "aggs": aggs},
            )
        return dict(result["aggregations"])

    def get(
        self, index: str, doc_id: str, source: list[str] | None = None
    ) -> dict[str, Any] | None:
        """One document with its sequence number and primary term, or ``None``."""
        params = {"_source_includes": ",".join(source)} if source else {}
        try:
            with self.unavailable("get"):
                return dict(self.client.get(index=index, id=doc_id, params=params))
        except NotFoundError:
            return None

    def mget(self, index: str, doc_ids: list[str]) -> dict[str, dict[str, Any]]:
        with self.unavailable("get"):
            docs = self.client.mget(index=index, body={"ids": doc_ids})["docs"]
        return {doc["_id"]: doc["_source"] for doc in docs if doc.get("found")}

    def update_doc(self, index: str, doc_id: str, values: dict[str, Any]) -> None:
        try:
            with self.unavailable("update"):
                self.client.update(
                    index=index,
                    id=doc_id,
                    body={"doc": values},
                    retry_on_conflict=RETRY_ON_CONFLICT,
                    refresh=self.refresh,
                )
        except NotFoundError:
            pass  # removed meanwhile: nothing left to correct

    def bulk(
        self, actions: list[dict[str, Any]], what: str, *, expected: set[int]
    ) -> list[dict[str, Any]]:
        """Send a bulk request; return each action's result (in order). Item failures other than
        the ``expected`` statuses raise: 429/5xx as IndexUnavailable, anything else as a bug."""
        with self.unavailable(what):
            response = self.client.bulk(body=actions, refresh=self.refresh)
        items = [next(iter(item.values())) for item in response["items"]]
        for item in items:
            status = item.get("status", 0)
            if status < 300 or status in expected:
                continue
            if status in UNAVAILABLE_STATUSES or status == 409:  # 409: conflicts outlasted retries
                raise IndexUnavailable(f"{self.where}: {what}: {status} {item_reason(item)}")
            raise RuntimeError(f"{self.where}: {what} refused: {status} {item_reason(item)}")
        return items

    @contextmanager
    def unavailable(self, what: str) -> Iterator[None]:
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


def item_reason(item: dict[str, Any]) -> str:
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


def without_credentials(url: str) -> str:
    """The URL as it may appear in messages and logs."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=host))
