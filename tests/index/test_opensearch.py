"""The OpenSearch backend without a server: a real opensearch-py client whose connection layer is
replaced by a recorder, so that the client's own serialisation, URL building and bulk
formatting run; the recorder keeps every request and answers with canned responses.

Nothing here executes a query: the tests pin down the requests each operation sends (mappings,
query bodies for each query kind of the contract suite, bulk payloads, CAS parameters) and how
the backend reads canned answers. What stays untested without a live cluster is listed in
docs/opensearch.md.
"""

from __future__ import annotations

import importlib.util
import json
import re
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import pytest
from opensearchpy import OpenSearch
from opensearchpy.connection import Connection
from opensearchpy.exceptions import ConnectionError as TransportConnectionError

from openjip.config import Settings
from openjip.config.settings import IndexSettings
from openjip.index import (
    IndexUnavailable,
    InstanceRecord,
    InvalidQuery,
    InvalidRecord,
    Query,
    RunOutput,
    SeriesRecord,
    StudyRecord,
    open_index,
)
from openjip.index.opensearch import OpenSearchIndex
from openjip.index.opensearch import cluster as cluster_module
from openjip.index.opensearch import reads as reads_module
from openjip.index.opensearch.counts import SERIES_SCRIPT, STUDY_SCRIPT
from openjip.index.opensearch.mappings import PROPERTIES, TEMPLATE_VERSION, index_template
from openjip.index.opensearch.query import INSTANCE_SORT, SERIES_SORT, STUDY_SORT

# -- the recorder -------------------------------------------------------------------------------


@dataclass
class Request:
    method: str
    path: str
    params: dict[str, str]
    body: Any
    """Parsed JSON; for _bulk the list of parsed NDJSON lines."""


Answer = tuple[int, Any] | Callable[[Request], tuple[int, Any]]


@dataclass
class Cluster:
    """Records requests and answers them: canned answers first (in order, per method and path
    pattern), else the empty answer an empty, healthy cluster would give."""

    requests: list[Request] = field(default_factory=list)
    canned: list[tuple[str, re.Pattern[str], Answer]] = field(default_factory=list)
    connection_kwargs: dict[str, Any] = field(default_factory=dict)
    closed: bool = False

    def on(self, method: str, path: str, *answers: Answer) -> None:
        for answer in answers:
            self.canned.append((method, re.compile(path), answer))

    def respond(self, request: Request) -> tuple[int, Any]:
        for n, (method, pattern, answer) in enumerate(self.canned):
            if method == request.method and pattern.fullmatch(request.path):
                del self.canned[n]
                return answer(request) if callable(answer) else answer
        if request.method == "GET" and "/_doc/" in request.path:
            return 404, {"found": False}
        if request.method == "HEAD":
            return 404, {}
        return 200, _empty_answer(request)

    def sent(self, method: str, path: str) -> list[Request]:
        pattern = re.compile(path)
        return [r for r in self.requests if r.method == method and pattern.fullmatch(r.path)]

    def searches(self, index: str) -> list[dict[str, Any]]:
        return [r.body for r in self.sent("POST", f"/{index}/_search")]

    def bulks(self) -> list[list[Any]]:
        return [r.body for r in self.sent("POST", "/_bulk")]


def _empty_answer(request: Request) -> Any:
    path, body = request.path, request.body
    if path.endswith("/_bulk"):
        items = []
        for line in body[::2]:
            ((op, meta),) = line.items()
            status, result = {"create": (201, "created"), "update": (201, "created")}.get(
                op, (200, "updated")
            )
            items.append(
                {
                    op: {
                        "_index": meta["_index"],
                        "_id": meta["_id"],
                        "status": status,
                        "result": result,
                    }
                }
            )
        return {"errors": False, "items": items}
    if path.endswith("/_mget"):
        docs = body.get("docs") or [{"_id": i} for i in body["ids"]]
        return {"docs": [{**d, "found": False} for d in docs]}
    if path.endswith("/_search"):
        aggs = {name: {"value": None, "buckets": []} for name in body.get("aggs", {})}
        return {"hits": {"hits": []}, "aggregations": aggs}
    if path.endswith("/_count"):
        return {"count": 0}
    if path.startswith("/_cluster/health"):
        return {"status": "green", "unassigned_shards": 0}
    if path.endswith("/_update_by_query"):
        return {"updated": 0, "version_conflicts": 0}
    return {"acknowledged": True}


class RecordingConnection(Connection):
    """opensearch-py's connection layer with the HTTP replaced by ``cluster``."""

    cluster: Cluster

    def __init__(self, **kwargs: Any) -> None:
        self.cluster.connection_kwargs = kwargs
        super().__init__(**kwargs)

    def perform_request(
        self,
        method: str,
        url: str,
        params: Any = None,
        body: bytes | None = None,
        timeout: Any = None,
        ignore: Any = (),
        headers: Any = None,
    ) -> Any:
        path = self.url_prefix + url
        text = body.decode() if body else ""
        if path.endswith("/_bulk"):
            parsed: Any = [json.loads(line) for line in text.splitlines() if line]
        else:
            parsed = json.loads(text) if text else None
        params = {k: v.decode() if isinstance(v, bytes) else v for k, v in (params or {}).items()}
        request = Request(method, path, params, parsed)
        self.cluster.requests.append(request)
        status, data = self.cluster.respond(request)
        raw = json.dumps(data)
        if not 200 <= status < 300 and status not in ignore:
            self._raise_error(status, raw, "application/json")
        return status, {}, raw

    def close(self) -> None:
        self.cluster.closed = True


def connection_class(cluster: Cluster) -> type[RecordingConnection]:
    return type("Recording", (RecordingConnection,), {"cluster": cluster})


@pytest.fixture
def cluster() -> Cluster:
    return Cluster()


@pytest.fixture
def os_index(cluster: Cluster) -> Iterator[OpenSearchIndex]:
    client = OpenSearch(
        hosts=["http://opensearch.test:9200"], connection_class=connection_class(cluster)
    )
    handle = OpenSearchIndex(client, prefix="t")
    handle.check()  # puts the templates and creates the indices
    cluster.requests.clear()
    yield handle
    handle.close()


def _hit(source: dict[str, Any], sort: list[Any] | None = None) -> dict[str, Any]:
    uid = (
        source.get("SOPInstanceUID")
        or source.get("SeriesInstanceUID")
        or source.get("StudyInstanceUID")
    )
    return {"_id": uid, "_source": source, "sort": sort or [uid]}


def _hits(*hits: dict[str, Any]) -> tuple[int, Any]:
    return 200, {"hits": {"hits": list(hits)}}


# -- mappings -----------------------------------------------------------------------------------

# What each Python type of a record field may be stored as.
ALLOWED_TYPES = {
    str: {"keyword", "text", "date"},
    int: {"integer", "long"},
    int | None: {"integer", "long"},
    float: {"double"},
    bool: {"boolean"},
    list[str]: {"keyword"},
    dict[str, Any]: {"object"},
}
RECORDS = {
    "studies": StudyRecord,
    "series": SeriesRecord,
    "instances": InstanceRecord,
    "runs": RunOutput,
}


def test_every_index_maps_a_record() -> None:
    assert sorted(PROPERTIES) == sorted(RECORDS)


def mapping_problems(record: type, properties: dict[str, Any]) -> list[str]:
    """Record fields without a mapping, mappings without a field, and types that disagree."""
    hints = typing.get_type_hints(record)
    problems = [f"{name} is not mapped" for name in hints if name not in properties]
    problems += [f"{name} is no field" for name in properties if name not in hints]
    for name, hint in hints.items():
        spec = properties.get(name)
        if spec and spec["type"] not in ALLOWED_TYPES[hint]:
            problems.append(f"{name}: {hint} mapped as {spec['type']}")
    return problems


@pytest.mark.parametrize("kind", sorted(RECORDS))
def test_mappings_cover_every_record_field_with_a_consistent_type(kind: str) -> None:
    properties = {k: v for k, v in PROPERTIES[kind].items() if k != "text"}
    assert mapping_problems(RECORDS[kind], properties) == []


def test_a_new_record_field_without_mapping_is_reported() -> None:
    @dataclass
    class Grown(SeriesRecord):
        ProtocolName: str = ""

    assert mapping_problems(Grown, PROPERTIES["series"]) == [
        "ProtocolName is not mapped",
        "text is no field",
    ]


def test_a_field_has_the_same_mapping_in_every_index() -> None:
    """Queries and aggregations use one field name across the indices."""
    seen: dict[str, Any] = {}
    for kind in PROPERTIES:
        for name, spec in PROPERTIES[kind].items():
            plain = {k: v for k, v in spec.items() if k != "copy_to"}
            assert seen.setdefault(name, plain) == plain, name


def test_mapping_details() -> None:
    series, instances = PROPERTIES["series"], PROPERTIES["instances"]
    assert series["StudyDate"]["format"] == "basic_date"
    assert instances["header"] == {"type": "object", "enabled": False}
    assert {"SeriesInstanceUID", "StudyInstanceUID", "PatientID", "Modality"} <= {
        name for name, spec in series.items() if spec["type"] == "keyword"
    }
    text_sources = sorted(name for name, spec in series.items() if spec.get("copy_to") == "text")
    assert text_sources == ["PatientName", "SeriesDescription", "StudyDescription"]
    assert series["text"]["analyzer"] == "openjip_prefixes"
    assert PROPERTIES["studies"]["StudyDescription"]["analyzer"] == "standard"
    assert series["last_received_at"]["type"] == "double"


def test_first_call_puts_templates_and_creates_indices(cluster: Cluster) -> None:
    client = OpenSearch(hosts=["http://os.test:9200"], connection_class=connection_class(cluster))
    handle = OpenSearchIndex(client, prefix="site", shards=2, replicas=1)
    assert cluster.requests == []  # nothing sent on construction
    handle.find_studies(Query())
    handle.find_series(Query())
    setup = [(r.method, r.path) for r in cluster.requests if not r.path.endswith("_search")]
    assert setup == [
        ("GET", "/_index_template/site-*"),
        ("PUT", "/_index_template/site-studies"),
        ("HEAD", "/site-studies"),
        ("PUT", "/site-studies"),
        ("PUT", "/_index_template/site-series"),
        ("HEAD", "/site-series"),
        ("PUT", "/site-series"),
        ("PUT", "/_index_template/site-instances"),
        ("HEAD", "/site-instances"),
        ("PUT", "/site-instances"),
        ("PUT", "/_index_template/site-runs"),
        ("HEAD", "/site-runs"),
        ("PUT", "/site-runs"),
    ]
    template = cluster.requests[4].body
    assert template == index_template("site", "series", shards=2, replicas=1)
    assert template["version"] == template["_meta"]["schema_version"] == TEMPLATE_VERSION
    assert template["index_patterns"] == ["site-series"]
    assert template["template"]["mappings"]["dynamic"] == "strict"
    assert template["template"]["settings"]["index"]["number_of_shards"] == 2
    assert cluster.requests[6].body is None  # the template gives the index its mapping


def test_an_existing_index_gets_the_fields_this_version_maps(cluster: Cluster) -> None:
    cluster.on("HEAD", "/t-(studies|series|instances|runs)", *[(200, {})] * 4)
    client = OpenSearch(hosts=["http://os.test:9200"], connection_class=connection_class(cluster))
    assert OpenSearchIndex(client, prefix="t").find_series(Query()) == []
    mappings = cluster.sent("PUT", "/t-.*/_mapping")
    assert [(m.path, m.body) for m in mappings] == [
        (f"/t-{kind}/_mapping", {"properties": PROPERTIES[kind]})
        for kind in ("studies", "series", "instances", "runs")
    ]


def templates_answer(prefix: str, versions: dict[str, int | None]) -> tuple[int, Any]:
    """What GET /_index_template/<prefix>-* answers: each template, with its version if any."""
    entries = []
    for kind, version in versions.items():
        template = index_template(prefix, kind, shards=1, replicas=0)
        if version is None:
            del template["version"]  # put by openjip 0.2, which versioned nothing
        else:
            template["version"] = version
        entries.append({"name": f"{prefix}-{kind}", "index_template": template})
    return 200, {"index_templates": entries}


def test_templates_of_a_newer_openjip_are_refused_before_anything_is_written(
    cluster: Cluster,
) -> None:
    newer = TEMPLATE_VERSION + 1
    cluster.on(
        "GET", "/_index_template/t-\\*", templates_answer("t", {"studies": 1, "series": newer})
    )
    client = OpenSearch(hosts=["http://os.test:9200"], connection_class=connection_class(cluster))
    with pytest.raises(
        IndexUnavailable,
        match=rf"template t-series is at schema version {newer}, newer than version "
        rf"{TEMPLATE_VERSION} that this openjip knows.* Nothing was changed",
    ):
        OpenSearchIndex(client, prefix="t", where="OpenSearch http://os.test:9200").check()
    assert [r.method for r in cluster.requests] == ["GET"]  # nothing put, nothing created


def test_a_rebuild_leaves_the_indices_of_a_newer_openjip_alone(cluster: Cluster) -> None:
    newer = templates_answer("t", {"runs": TEMPLATE_VERSION + 1})
    cluster.on("GET", "/_index_template/t-\\*", newer)
    client = OpenSearch(hosts=["http://os.test:9200"], connection_class=connection_class(cluster))
    with pytest.raises(IndexUnavailable, match="template t-runs is at schema version"):
        OpenSearchIndex(client, prefix="t").clear()
    assert cluster.sent("DELETE", ".*") == []


def test_templates_of_this_or_an_older_openjip_are_put_again(cluster: Cluster) -> None:
    cluster.on(
        "GET", "/_index_template/t-\\*", templates_answer("t", {"studies": None, "series": 1})
    )
    client = OpenSearch(hosts=["http://os.test:9200"], connection_class=connection_class(cluster))
    index = OpenSearchIndex(client, prefix="t")
    assert index.find_series(Query()) == []
    put = cluster.sent("PUT", "/_index_template/t-.*")
    assert [r.body["version"] for r in put] == [TEMPLATE_VERSION] * 4


def test_a_cluster_without_templates_answers_404(cluster: Cluster) -> None:
    missing = (404, {"error": {"type": "resource_not_found_exception"}, "status": 404})
    cluster.on("GET", "/_index_template/t-\\*", missing)
    client = OpenSearch(hosts=["http://os.test:9200"], connection_class=connection_class(cluster))
    assert OpenSearchIndex(client, prefix="t").find_series(Query()) == []
    assert len(cluster.sent("PUT", "/_index_template/t-.*")) == 4


def test_an_index_created_meanwhile_by_another_process_is_fine(cluster: Cluster) -> None:
    exists = (400, {"error": {"type": "resource_already_exists_exception"}, "status": 400})
    cluster.on("PUT", "/t-(studies|series|instances|runs)", *[exists] * 4)
    client = OpenSearch(hosts=["http://os.test:9200"], connection_class=connection_class(cluster))
    assert OpenSearchIndex(client, prefix="t").find_series(Query()) == []


def test_an_incompatible_mapping_says_what_to_do(cluster: Cluster) -> None:
    cluster.on("HEAD", "/t-studies", (200, {}))
    conflict = {
        "error": {
            "type": "illegal_argument_exception",
            "reason": "mapper [StudyDate] cannot be changed from type [keyword] to [date]",
        },
        "status": 400,
    }
    cluster.on("PUT", "/t-studies/_mapping", (400, conflict))
    client = OpenSearch(hosts=["http://os.test:9200"], connection_class=connection_class(cluster))
    with pytest.raises(
        IndexUnavailable,
        match=r"t-studies does not take .* cannot be changed"
        r".* run `openjip index rebuild`",
    ):
        OpenSearchIndex(client, prefix="t").check()


# -- query bodies -------------------------------------------------------------------------------


def term(name: str, value: str, **extra: Any) -> dict[str, Any]:
    return {"term": {name: {"value": value, **extra}}}


def wildcard(name: str, value: str, **extra: Any) -> dict[str, Any]:
    return {"wildcard": {name: {"value": value, **extra}}}


def date(**bounds: str) -> dict[str, Any]:
    return {"range": {"StudyDate": {"format": "basic_date", **bounds}}}


def text(words: str) -> dict[str, Any]:
    return {"match": {"text": {"query": words, "operator": "and"}}}


CI = {"case_insensitive": True}
# (query fields, filter clauses of the series search); the cases of the contract suite
QUERY_CASES: list[tuple[dict[str, Any], list[dict[str, Any]]]] = [
    ({}, []),
    (dict(PatientID="PAT-1"), [term("PatientID", "PAT-1")]),
    (dict(PatientID="pat-1"), [term("PatientID", "pat-1")]),
    (dict(PatientID=" pat-1 "), [term("PatientID", "pat-1")]),
    (dict(PatientID="PAT-?"), [wildcard("PatientID", "PAT-?")]),
    (dict(PatientID="PAT*"), [wildcard("PatientID", "PAT*")]),
    (dict(PatientID="PAT_3%"), [term("PatientID", "PAT_3%")]),
    (dict(PatientID="PAT_*"), [wildcard("PatientID", "PAT_*")]),
    (dict(PatientID="PAT?3%"), [wildcard("PatientID", "PAT?3%")]),
    (dict(PatientID="PAT%"), [term("PatientID", "PAT%")]),
    (dict(PatientID="*"), []),
    (dict(PatientID="A\\B*"), [wildcard("PatientID", "A\\\\B*")]),  # the escape is escaped
    (dict(PatientID="A\\B"), [term("PatientID", "A\\B")]),
    (dict(PatientName="DOE^J*"), [wildcard("PatientName", "DOE^J*", **CI)]),
    (dict(PatientName="doe^jane"), [term("PatientName", "doe^jane", **CI)]),
    (dict(PatientName="*JANE"), [wildcard("PatientName", "*JANE", **CI)]),
    (dict(PatientName="DOE^JOH?"), [wildcard("PatientName", "DOE^JOH?", **CI)]),
    (dict(PatientName="DOE_JOHN"), [term("PatientName", "DOE_JOHN", **CI)]),
    (dict(PatientName="DOE%"), [term("PatientName", "DOE%", **CI)]),
    (dict(PatientName="SMITH^A[1]"), [term("PatientName", "SMITH^A[1]", **CI)]),
    (dict(PatientName="SMITH^A[*"), [wildcard("PatientName", "SMITH^A[*", **CI)]),
    (dict(PatientName="MÜLLER*"), [wildcard("PatientName", "MÜLLER*", **CI)]),
    (dict(StudyDate="20240105"), [date(gte="20240105", lte="20240105")]),
    (dict(StudyDate="20240105-20240220"), [date(gte="20240105", lte="20240220")]),
    (dict(StudyDate="20240106-"), [date(gte="20240106")]),
    (dict(StudyDate="-20240105"), [date(lte="20240105")]),
    (dict(StudyDate="20231231-20231231"), [date(gte="20231231", lte="20231231")]),
    (dict(Modality="CT"), [term("Modality", "CT")]),
    (dict(Modality="SR"), [term("Modality", "SR")]),
    (dict(Modality="M?"), [wildcard("Modality", "M?")]),
    (dict(Modality="ct"), [term("Modality", "ct")]),
    (dict(BodyPartExamined="HEAD"), [term("BodyPartExamined", "HEAD")]),
    (
        dict(Modality="SR", BodyPartExamined="CHEST"),
        [term("Modality", "SR"), term("BodyPartExamined", "CHEST")],
    ),
    (dict(AccessionNumber="ACC2"), [term("AccessionNumber", "ACC2")]),
    (dict(AccessionNumber="ACC*"), [wildcard("AccessionNumber", "ACC*")]),
    (
        dict(StudyInstanceUID=["1.1", "1.3", "9.9"]),
        [{"terms": {"StudyInstanceUID": ["1.1", "1.3", "9.9"]}}],
    ),
    (dict(SeriesInstanceUID=["1.2.2"]), [{"terms": {"SeriesInstanceUID": ["1.2.2"]}}]),
    (dict(text="lung"), [text("lung")]),
    (dict(text="CHEST"), [text("CHEST")]),
    (dict(text="chest"), [text("chest")]),
    (dict(text="jane"), [text("jane")]),
    (dict(text="dose"), [text("dose")]),
    (dict(text="muller"), [text("muller")]),
    (dict(text="abd"), [text("abd")]),
    (dict(text="lung brain"), [text("lung brain")]),
    (dict(text="brain t1"), [text("brain t1")]),
    (dict(text='"chest (*'), [text("chest")]),
    (dict(text="(* )"), []),
    (dict(text="chest OR brain"), [text("chest OR brain")]),
    (
        dict(PatientID="PAT*", Modality="CT", StudyDate="20240101-"),
        [wildcard("PatientID", "PAT*"), date(gte="20240101"), term("Modality", "CT")],
    ),
    (
        dict(PatientName="DOE*", text="flair"),
        [wildcard("PatientName", "DOE*", **CI), text("flair")],
    ),
    (dict(Modality="MR", text="flair"), [term("Modality", "MR"), text("flair")]),
    (dict(PatientID="PAT-2"), [term("PatientID", "PAT-2")]),
    (
        dict(SeriesInstanceUID=["1.2.1", "1.4.1"], BodyPartExamined="HEAD"),
        [term("BodyPartExamined", "HEAD"), {"terms": {"SeriesInstanceUID": ["1.2.1", "1.4.1"]}}],
    ),
]
# Cases naming SOPInstanceUIDs: they are resolved to series first (tested on their own below).
SOP_CASES = [
    dict(SOPInstanceUID=["1.4.1.1", "1.1.2.1"]),
    dict(SOPInstanceUID=["1.1.2.1"]),
]


def _contract_cases() -> list[dict[str, Any]]:
    """The query fields of every case of the contract suite (loaded from its file: tests are
    not importable as modules)."""
    path = Path(__file__).with_name("test_contract.py")
    spec = importlib.util.spec_from_file_location("index_contract_cases", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return [fields for fields, _ in module.STUDY_CASES + module.SERIES_CASES]


def test_every_contract_case_has_a_request_body_here() -> None:
    """A case added to the contract suite must get its expected OpenSearch request here."""
    here = [fields for fields, _ in QUERY_CASES] + SOP_CASES
    missing = [fields for fields in _contract_cases() if fields not in here]
    assert missing == []


def _bool(clauses: list[dict[str, Any]]) -> dict[str, Any]:
    return {"bool": {"filter": clauses}} if clauses else {"match_all": {}}


@pytest.mark.parametrize(("fields", "clauses"), QUERY_CASES, ids=[str(c[0]) for c in QUERY_CASES])
def test_series_query_bodies(
    os_index: OpenSearchIndex, cluster: Cluster, fields: dict[str, Any], clauses: list[Any]
) -> None:
    assert os_index.find_series(Query(**fields)) == []
    (body,) = cluster.searches("t-series")
    assert body == {
        "query": _bool(clauses),
        "sort": SERIES_SORT,
        "size": 1000,
        "_source": True,
        "track_total_hits": False,
    }
    assert body["sort"] == [
        {"StudyInstanceUID": {"order": "asc"}},
        {"SeriesNumber": {"order": "asc", "missing": "_first"}},
        {"SeriesInstanceUID": {"order": "asc"}},
    ]


STUDY_ONLY = [
    case
    for case in QUERY_CASES
    if not ({"Modality", "BodyPartExamined", "SeriesInstanceUID", "text"} & set(case[0]))
]


@pytest.mark.parametrize(("fields", "clauses"), STUDY_ONLY, ids=[str(c[0]) for c in STUDY_ONLY])
def test_study_conditions_search_the_studies(
    os_index: OpenSearchIndex, cluster: Cluster, fields: dict[str, Any], clauses: list[Any]
) -> None:
    os_index.find_studies(Query(**fields))
    (body,) = cluster.searches("t-studies")
    assert body["query"] == _bool(clauses)
    assert (
        body["sort"]
        == STUDY_SORT
        == [
            {"StudyDate": {"order": "asc", "missing": "_first"}},
            {"StudyInstanceUID": {"order": "asc"}},
        ]
    )
    assert cluster.searches("t-series") == []


def test_series_conditions_find_studies_through_a_composite_aggregation(
    os_index: OpenSearchIndex, cluster: Cluster
) -> None:
    buckets = [
        {"key": {"date": None, "uid": "1.3"}},
        {"key": {"date": 1704412800000, "uid": "1.1"}},
    ]
    cluster.on(
        "POST", "/t-series/_search", (200, {"aggregations": {"studies": {"buckets": buckets}}})
    )
    cluster.on(
        "POST",
        "/t-studies/_mget",
        (
            200,
            {
                "docs": [
                    {
                        "_id": "1.3",
                        "found": True,
                        "_source": {
                            "StudyInstanceUID": "1.3",
                            "StudyDate": None,
                            "ModalitiesInStudy": ["CT"],
                        },
                    },
                    {
                        "_id": "1.1",
                        "found": True,
                        "_source": {
                            "StudyInstanceUID": "1.1",
                            "StudyDate": "20240105",
                            "ModalitiesInStudy": ["SR", "CT"],
                        },
                    },
                ]
            },
        ),
    )
    studies = os_index.find_studies(Query(Modality="CT", PatientID="PAT*"))
    assert [(s.StudyInstanceUID, s.StudyDate, s.ModalitiesInStudy) for s in studies] == [
        ("1.3", "", ["CT"]),
        ("1.1", "20240105", ["CT", "SR"]),
    ]
    (body,) = cluster.searches("t-series")
    assert body == {
        "query": _bool([wildcard("PatientID", "PAT*"), term("Modality", "CT")]),
        "size": 0,
        "track_total_hits": False,
        "aggs": {
            "studies": {
                "composite": {
                    "size": 1000,
                    "sources": [
                        {
                            "date": {
                                "terms": {
                                    "field": "StudyDate",
                                    "missing_bucket": True,
                                    "order": "asc",
                                }
                            }
                        },
                        {"uid": {"terms": {"field": "StudyInstanceUID", "order": "asc"}}},
                    ],
                }
            }
        },
    }
    (mget,) = cluster.sent("POST", "/t-studies/_mget")
    assert mget.body == {"ids": ["1.3", "1.1"]}


def small_pages(monkeypatch: pytest.MonkeyPatch, size: int) -> None:
    """Pages of ``size`` hits, for the requests and the reads that chunk by pages."""
    monkeypatch.setattr(cluster_module, "PAGE_SIZE", size)
    monkeypatch.setattr(reads_module, "PAGE_SIZE", size)


def test_composite_pages_follow_the_after_key(
    os_index: OpenSearchIndex, cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    small_pages(monkeypatch, 2)
    page = [{"key": {"date": None, "uid": f"1.{n}"}} for n in range(4)]
    cluster.on(
        "POST",
        "/t-series/_search",
        (200, {"aggregations": {"studies": {"buckets": page[:2], "after_key": page[1]["key"]}}}),
        (200, {"aggregations": {"studies": {"buckets": page[2:], "after_key": page[3]["key"]}}}),
    )
    os_index.find_studies(Query(text="chest", offset=1, limit=2))
    first, second = cluster.searches("t-series")
    assert "after" not in first["aggs"]["studies"]["composite"]
    assert second["aggs"]["studies"]["composite"]["after"] == {"date": None, "uid": "1.1"}
    (mget,) = cluster.sent("POST", "/t-studies/_mget")
    assert mget.body == {"ids": ["1.1", "1.2"]}


def test_sop_instance_uids_are_resolved_to_their_series(
    os_index: OpenSearchIndex, cluster: Cluster
) -> None:
    cluster.on(
        "POST",
        "/t-instances/_search",
        _hits(
            _hit({"SeriesInstanceUID": "1.4.1"}),
            _hit({"SeriesInstanceUID": "1.1.2"}),
            _hit({"SeriesInstanceUID": "1.1.2"}),
        ),
    )
    os_index.find_series(Query(SOPInstanceUID=["1.4.1.1", "1.1.2.1", "1.1.2.2"], Modality="SR"))
    (lookup,) = cluster.searches("t-instances")
    assert lookup == {
        "query": _bool([{"terms": {"SOPInstanceUID": ["1.4.1.1", "1.1.2.1", "1.1.2.2"]}}]),
        "_source": ["SeriesInstanceUID"],
        "size": 3,
    }
    (body,) = cluster.searches("t-series")
    assert body["query"] == _bool(
        [term("Modality", "SR"), {"terms": {"SeriesInstanceUID": ["1.1.2", "1.4.1"]}}]
    )


def test_unknown_sop_instance_uids_match_nothing(
    os_index: OpenSearchIndex, cluster: Cluster
) -> None:
    assert os_index.find_series(Query(SOPInstanceUID=["9"])) == []
    assert os_index.find_studies(Query(SOPInstanceUID=["9"])) == []
    assert os_index.find_instances(Query(SOPInstanceUID=["9"], Modality="CT")) == []
    assert cluster.searches("t-series") == []


def test_instances_without_higher_conditions_search_the_instances(
    os_index: OpenSearchIndex, cluster: Cluster
) -> None:
    cluster.on(
        "POST",
        "/t-instances/_search",
        _hits(
            _hit(
                {
                    "SOPInstanceUID": "1",
                    "SeriesInstanceUID": "2",
                    "StudyInstanceUID": "3",
                    "StudyDate": None,
                    "SeriesNumber": None,
                }
            )
        ),
    )
    (record,) = os_index.find_instances(Query(SOPInstanceUID=["1"]))
    assert record == InstanceRecord("1", "2", "3")
    os_index.find_instances(Query(), with_header=True)
    first, second = cluster.searches("t-instances")
    assert first["query"] == _bool([{"terms": {"SOPInstanceUID": ["1"]}}])
    assert (
        first["sort"]
        == INSTANCE_SORT
        == [
            {"SeriesInstanceUID": {"order": "asc"}},
            {"InstanceNumber": {"order": "asc", "missing": "_first"}},
            {"SOPInstanceUID": {"order": "asc"}},
        ]
    )
    assert first["_source"] == {"excludes": ["header"]}
    assert second["query"] == {"match_all": {}}
    assert second["_source"] is True


def test_instances_are_found_through_their_series_in_chunks(
    os_index: OpenSearchIndex, cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reads_module, "SERIES_PER_CHUNK", 2)
    cluster.on("POST", "/t-series/_search", _hits(*(_hit({"SeriesInstanceUID": u}) for u in "abc")))
    cluster.on("POST", "/t-instances/_count", (200, {"count": 4}))
    os_index.find_instances(Query(Modality="MR", SOPInstanceUID=[]), with_header=False)
    os_index.find_instances(Query(Modality="MR", offset=5, limit=3))
    series_list = cluster.searches("t-series")[0]
    assert series_list["query"] == _bool([term("Modality", "MR")])
    assert series_list["sort"] == [{"SeriesInstanceUID": {"order": "asc"}}]
    assert series_list["_source"] is False
    # The first call: both chunks, in series order.
    chunk_ab, chunk_c = cluster.searches("t-instances")[:2]
    assert chunk_ab["query"] == _bool([{"terms": {"SeriesInstanceUID": ["a", "b"]}}])
    assert chunk_c["query"] == _bool([{"terms": {"SeriesInstanceUID": ["c"]}}])
    # The second call: the empty canned series list ends it before any chunk ...
    assert len(cluster.searches("t-instances")) == 2


def test_instance_offsets_skip_whole_chunks_by_count(
    os_index: OpenSearchIndex, cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reads_module, "SERIES_PER_CHUNK", 2)
    cluster.on("POST", "/t-series/_search", _hits(*(_hit({"SeriesInstanceUID": u}) for u in "abc")))
    cluster.on("POST", "/t-instances/_count", (200, {"count": 4}), (200, {"count": 9}))
    os_index.find_instances(Query(Modality="MR", offset=5, limit=3))
    counts = cluster.sent("POST", "/t-instances/_count")
    assert [c.body["query"]["bool"]["filter"][0]["terms"]["SeriesInstanceUID"] for c in counts] == [
        ["a", "b"],
        ["c"],
    ]
    (search,) = cluster.searches("t-instances")
    assert search["query"] == _bool([{"terms": {"SeriesInstanceUID": ["c"]}}])
    assert (search["from"], search["size"]) == (1, 3)


# -- paging -------------------------------------------------------------------------------------


def test_paging_by_from_and_size(os_index: OpenSearchIndex, cluster: Cluster) -> None:
    os_index.find_studies(Query(limit=10, offset=20))
    os_index.find_studies(Query(offset=20))
    assert os_index.find_studies(Query(limit=0)) == []
    first, second = cluster.searches("t-studies")
    assert (first["from"], first["size"]) == (20, 10)
    assert (second["from"], second["size"]) == (20, 1000)


def test_later_pages_use_search_after(
    os_index: OpenSearchIndex, cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    small_pages(monkeypatch, 2)
    monkeypatch.setattr(cluster_module, "MAX_RESULT_WINDOW", 4)
    series = [
        _hit({"SeriesInstanceUID": f"s{n}", "StudyInstanceUID": "st"}, ["st", n, f"s{n}"])
        for n in range(5)
    ]
    cluster.on(
        "POST", "/t-series/_search", _hits(*series[:2]), _hits(*series[2:4]), _hits(series[4])
    )
    # offset 3 + a page of 2 is beyond the window of 4: skip by search_after instead of from.
    found = os_index.find_series(Query(offset=3))
    assert [s.SeriesInstanceUID for s in found] == ["s3", "s4"]
    bodies = cluster.searches("t-series")
    assert ["from" in b for b in bodies] == [False, False, False]
    assert [b.get("search_after") for b in bodies] == [None, ["st", 1, "s1"], ["st", 3, "s3"]]

    cluster.requests.clear()
    cluster.on("POST", "/t-series/_search", _hits(series[3]))
    assert [s.SeriesInstanceUID for s in os_index.find_series(Query(offset=3, limit=1))] == ["s3"]
    (body,) = cluster.searches("t-series")
    assert (body["from"], body["size"]) == (3, 1)  # 3 + 1 is within the window

    cluster.requests.clear()
    cluster.on("POST", "/t-series/_search", _hits(*series[:2]), _hits(series[2]))
    assert len(os_index.find_series(Query(limit=3))) == 3
    assert [b["size"] for b in cluster.searches("t-series")] == [2, 1]


# -- bad queries --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        dict(StudyDate="2024"),
        dict(StudyDate="20240301-20240101"),
        dict(limit=-1),
        dict(offset=-5),
        dict(SeriesInstanceUID=[str(n) for n in range(10_001)]),
    ],
    ids=["date", "range", "limit", "offset", "uids"],
)
def test_bad_queries_are_refused_before_any_request(
    os_index: OpenSearchIndex, cluster: Cluster, fields: dict[str, Any]
) -> None:
    for find in (os_index.find_studies, os_index.find_series, os_index.find_instances):
        with pytest.raises(InvalidQuery, match=r"\S"):
            find(Query(**fields))
    assert cluster.requests == []


# -- writing ------------------------------------------------------------------------------------


def record(sop: str, series: str = "S", study: str = "ST", **values: Any) -> InstanceRecord:
    values.setdefault("received_at", 100.0)
    values.setdefault("size", 1000)
    return InstanceRecord(sop, series, study, **values)


def test_upsert_of_new_instances(os_index: OpenSearchIndex, cluster: Cluster) -> None:
    header = {"00080060": {"vr": "CS", "Value": ["CT"]}}
    records = [
        record("1", Modality="CT", PatientName="DOE^J", received_at=10.0, header=header),
        record("2", Modality="CT", StudyDescription="Chest", received_at=12.0, size=500),
        record("3", Modality="CT", SeriesNumber=4, received_at=11.0),
        record("1", Modality="CT", PatientName="DOE^J", received_at=10.0, header=header),
    ]
    assert os_index.upsert_instances(records) == 3

    (mget,) = cluster.sent("POST", "/_mget")
    assert mget.body == {
        "docs": [{"_index": "t-series", "_id": "S"}, {"_index": "t-studies", "_id": "ST"}]
    }
    creates, series_bulk, study_bulk = cluster.bulks()
    assert creates[0::2] == [{"create": {"_index": "t-instances", "_id": sop}} for sop in "123"]
    first = creates[1]
    assert first == {**records[0].to_dict(with_header=True), "StudyDate": None}
    assert first["header"] == header

    assert series_bulk[0] == {"update": {"_index": "t-series", "_id": "S", "retry_on_conflict": 50}}
    script = series_bulk[1]["script"]
    assert (script["source"], script["lang"]) == (SERIES_SCRIPT, "painless")
    assert script["params"] == {
        "instances": 3,
        "size": 2500,
        "first": 10.0,
        "last": 12.0,
        "reopen": True,
        "fields": {
            "Modality": "CT",
            "PatientName": "DOE^J",
            "StudyDescription": "Chest",
            "SeriesNumber": 4,
        },
        "projects": ["default"],
    }
    upsert = series_bulk[1]["upsert"]
    assert set(upsert) == {f.name for f in fields(SeriesRecord)}
    assert (upsert["NumberOfSeriesRelatedInstances"], upsert["size"], upsert["StudyDate"]) == (
        3,
        2500,
        None,
    )
    assert (upsert["complete"], upsert["version"], upsert["first_received_at"]) == (False, 0, 10.0)

    assert study_bulk[0] == {
        "update": {"_index": "t-studies", "_id": "ST", "retry_on_conflict": 50}
    }
    script = study_bulk[1]["script"]
    assert script["source"] == STUDY_SCRIPT
    # The series was created (canned "created"), so the study gains one series.
    assert script["params"] == {
        "instances": 3,
        "series": 1,
        "last": 12.0,
        "modalities": ["CT"],
        "fields": {"PatientName": "DOE^J", "StudyDescription": "Chest"},
        "projects": ["default"],
    }
    assert set(study_bulk[1]["upsert"]) == {f.name for f in fields(StudyRecord)}
    assert all(r.params == {"refresh": "false"} for r in cluster.sent("POST", "/_bulk"))
    # Nothing to re-aggregate or propagate on the hot path.
    assert [r.path for r in cluster.requests] == ["/_mget", "/_bulk", "/_bulk", "/_bulk"]


def test_a_series_update_that_did_not_create_adds_no_series(
    os_index: OpenSearchIndex, cluster: Cluster
) -> None:
    cluster.on(
        "POST",
        "/_bulk",
        (200, {"items": [{"create": {"status": 201}}]}),
        (200, {"items": [{"update": {"status": 200, "result": "updated"}}]}),
    )
    os_index.upsert_instance(record("1"))
    study_bulk = cluster.bulks()[-1]
    assert study_bulk[1]["script"]["params"]["series"] == 0


def test_a_new_series_takes_the_study_fields_it_lacks(
    os_index: OpenSearchIndex, cluster: Cluster
) -> None:
    study = {
        "StudyInstanceUID": "ST",
        "PatientName": "DOE^J",
        "StudyDescription": "Chest",
        "PatientID": "P",
    }
    cluster.on(
        "POST",
        "/_mget",
        (
            200,
            {
                "docs": [
                    {"_index": "t-series", "_id": "SEG", "found": False},
                    {"_index": "t-studies", "_id": "ST", "found": True, "_source": study},
                ]
            },
        ),
    )
    os_index.upsert_instance(record("1", "SEG", PatientID="P", Modality="SEG"))
    upsert = cluster.bulks()[1][1]["upsert"]
    assert (upsert["PatientName"], upsert["StudyDescription"], upsert["PatientID"]) == (
        "DOE^J",
        "Chest",
        "P",
    )
    assert cluster.sent("POST", "/t-series/_update_by_query") == []


def test_changed_study_fields_are_copied_to_every_series(
    os_index: OpenSearchIndex, cluster: Cluster
) -> None:
    study = {"StudyInstanceUID": "ST", "PatientName": "DOE^JON", "PatientID": "P"}
    cluster.on(
        "POST",
        "/_mget",
        (
            200,
            {
                "docs": [
                    {"_index": "t-studies", "_id": "ST", "found": True, "_source": study},
                ]
            },
        ),
    )
    os_index.upsert_instance(record("1", PatientName="DOE^JOHN", PatientID="P"))
    (update,) = cluster.sent("POST", "/t-series/_update_by_query")
    assert update.params == {"conflicts": "proceed", "refresh": "true"}
    assert update.body["query"] == {"term": {"StudyInstanceUID": "ST"}}
    assert update.body["script"]["params"] == {"fields": {"PatientName": "DOE^JOHN"}}


def test_a_series_cannot_change_study_and_the_batch_is_refused(
    os_index: OpenSearchIndex, cluster: Cluster
) -> None:
    cluster.on(
        "POST",
        "/_mget",
        (
            200,
            {
                "docs": [
                    {
                        "_index": "t-series",
                        "_id": "A",
                        "found": True,
                        "_source": {"SeriesInstanceUID": "A", "StudyInstanceUID": "ST"},
                    },
                ]
            },
        ),
    )
    with pytest.raises(InvalidRecord, match="series A belongs to study ST, not OTHER"):
        os_index.upsert_instances([record("9", "Z"), record("2", "A", "OTHER")])
    with pytest.raises(InvalidRecord, match="series B belongs to study X, not Y"):
        os_index.upsert_instances([record("1", "B", "X"), record("2", "B", "Y")])
    with pytest.raises(InvalidRecord, match="without SOPInstanceUID"):
        os_index.upsert_instances([record("")])
    assert cluster.bulks() == []


CONFLICT = (409, {"error": {"type": "version_conflict_engine_exception"}, "status": 409})


def test_re_receive_replaces_under_cas_and_changes_the_size(
    os_index: OpenSearchIndex, cluster: Cluster
) -> None:
    cluster.on("POST", "/_bulk", (200, {"items": [{"create": {"status": 409}}]}))
    old = {"SeriesInstanceUID": "S", "StudyInstanceUID": "ST", "size": 1000, "received_at": 100.0}
    cluster.on(
        "GET",
        "/t-instances/_doc/1",
        (200, {"_id": "1", "found": True, "_seq_no": 4, "_primary_term": 1, "_source": old}),
        (200, {"_id": "1", "found": True, "_seq_no": 5, "_primary_term": 1, "_source": old}),
    )
    cluster.on("PUT", "/t-instances/_doc/1", CONFLICT)  # another writer came first: read again
    assert os_index.upsert_instance(record("1", size=400, received_at=120.0)) is False
    gets = cluster.sent("GET", "/t-instances/_doc/1")
    assert gets[0].params == {
        "_source_includes": "SeriesInstanceUID,StudyInstanceUID,size,received_at"
    }
    puts = cluster.sent("PUT", "/t-instances/_doc/1")
    assert [p.params for p in puts] == [
        {"if_seq_no": "4", "if_primary_term": "1", "refresh": "false"},
        {"if_seq_no": "5", "if_primary_term": "1", "refresh": "false"},
    ]
    assert puts[1].body["size"] == 400
    _, series_bulk, study_bulk = cluster.bulks()
    params = series_bulk[1]["script"]["params"]
    assert (params["instances"], params["size"], params["reopen"]) == (0, -600, False)
    assert study_bulk[1]["script"]["params"]["instances"] == 0
    assert "upsert" not in series_bulk[1]
    # The time changed, so the bounds are re-aggregated from the documents.
    assert cluster.sent("POST", "/t-instances,t-series/_refresh")
    bounds = cluster.searches("t-instances")[0]
    assert bounds["query"] == {"term": {"SeriesInstanceUID": "S"}}
    assert bounds["aggs"] == {
        "first": {"min": {"field": "received_at"}},
        "last": {"max": {"field": "received_at"}},
    }


def test_re_receive_into_another_series_moves_the_counts(
    os_index: OpenSearchIndex, cluster: Cluster
) -> None:
    cluster.on("POST", "/_bulk", (200, {"items": [{"create": {"status": 409}}]}))
    old = {"SeriesInstanceUID": "A", "StudyInstanceUID": "ST", "size": 1000, "received_at": 1.0}
    cluster.on(
        "GET",
        "/t-instances/_doc/2",
        (200, {"_id": "2", "found": True, "_seq_no": 1, "_primary_term": 1, "_source": old}),
    )
    cluster.on(
        "POST",
        "/_bulk",
        (
            200,
            {
                "items": [
                    {"update": {"status": 200, "result": "deleted"}},
                    {"update": {"status": 201, "result": "created"}},
                ]
            },
        ),
    )
    assert os_index.upsert_instance(record("2", "B", "ST2", received_at=3.0)) is True
    _, series_bulk, study_bulk = cluster.bulks()
    assert [line["update"]["_id"] for line in series_bulk[0::2]] == ["A", "B"]
    assert series_bulk[1]["script"]["params"]["instances"] == -1
    assert "upsert" not in series_bulk[1]
    assert series_bulk[3]["script"]["params"]["instances"] == 1
    study_params = {
        line["update"]["_id"]: body["script"]["params"]
        for line, body in zip(study_bulk[0::2], study_bulk[1::2], strict=True)
    }
    assert (study_params["ST"]["instances"], study_params["ST"]["series"]) == (-1, -1)
    assert (study_params["ST2"]["instances"], study_params["ST2"]["series"]) == (1, 1)


def test_a_bulk_item_failure_is_reported(os_index: OpenSearchIndex, cluster: Cluster) -> None:
    busy = {"status": 429, "error": {"type": "es_rejected_execution_exception"}}
    cluster.on("POST", "/_bulk", (200, {"errors": True, "items": [{"create": busy}]}))
    with pytest.raises(IndexUnavailable, match="429"):
        os_index.upsert_instance(record("1"))


def test_a_refused_instance_is_invalid_and_the_rest_is_counted(
    os_index: OpenSearchIndex, cluster: Cluster
) -> None:
    refused = {
        "status": 400,
        "error": {"type": "mapper_parsing_exception", "reason": "failed to parse [SeriesNumber]"},
    }
    cluster.on(
        "POST",
        "/_bulk",
        (200, {"errors": True, "items": [{"create": {"status": 201}}, {"create": refused}]}),
    )
    with pytest.raises(InvalidRecord, match=r"refused instances: 2 \(mapper_parsing_exception"):
        os_index.upsert_instances([record("1"), record("2")])
    _, series_bulk, study_bulk = cluster.bulks()
    assert series_bulk[1]["script"]["params"]["instances"] == 1
    assert study_bulk[1]["script"]["params"]["instances"] == 1


def test_counts_that_kept_conflicting_are_index_unavailable(
    os_index: OpenSearchIndex, cluster: Cluster
) -> None:
    conflict = {"status": 409, "error": {"type": "version_conflict_engine_exception"}}
    cluster.on(
        "POST",
        "/_bulk",
        (200, {"items": [{"create": {"status": 201}}]}),
        (200, {"errors": True, "items": [{"update": conflict}]}),
    )
    with pytest.raises(IndexUnavailable, match="count series: 409 version_conflict"):
        os_index.upsert_instance(record("1"))


def test_delete_instance(os_index: OpenSearchIndex, cluster: Cluster) -> None:
    assert os_index.delete_instance("nope") is False
    old = {"SeriesInstanceUID": "S", "StudyInstanceUID": "ST", "size": 70, "received_at": 5.0}
    cluster.on(
        "GET",
        "/t-instances/_doc/1",
        (200, {"_id": "1", "found": True, "_seq_no": 9, "_primary_term": 3, "_source": old}),
    )
    cluster.on(
        "POST", "/_bulk", (200, {"items": [{"update": {"status": 200, "result": "deleted"}}]})
    )
    assert os_index.delete_instance("1") is True
    (delete,) = cluster.sent("DELETE", "/t-instances/_doc/1")
    assert delete.params == {"if_seq_no": "9", "if_primary_term": "3", "refresh": "false"}
    series_bulk, study_bulk = cluster.bulks()
    assert series_bulk[1]["script"]["params"]["instances"] == -1
    assert series_bulk[1]["script"]["params"]["size"] == -70
    assert study_bulk[1]["script"]["params"]["series"] == -1
    assert "upsert" not in study_bulk[1]


def test_bounds_and_modalities_are_re_aggregated_after_a_delete(
    os_index: OpenSearchIndex, cluster: Cluster
) -> None:
    old = {"SeriesInstanceUID": "S", "StudyInstanceUID": "ST", "size": 70, "received_at": 5.0}
    cluster.on(
        "GET",
        "/t-instances/_doc/1",
        (200, {"_id": "1", "found": True, "_seq_no": 9, "_primary_term": 3, "_source": old}),
    )
    bounds = {"first": {"value": 1.0}, "last": {"value": 4.0}}
    cluster.on("POST", "/t-instances/_search", (200, {"aggregations": bounds}))
    study = {
        "last": {"value": 7.0},
        "modalities": {"buckets": [{"key": "SR"}, {"key": ""}, {"key": "CT"}]},
    }
    cluster.on("POST", "/t-series/_search", (200, {"aggregations": study}))
    os_index.delete_instance("1")
    refreshes = [r.path for r in cluster.requests if r.path.endswith("/_refresh")]
    assert refreshes == ["/t-instances,t-series/_refresh", "/t-series/_refresh"]
    (study_aggs,) = cluster.searches("t-series")
    assert study_aggs["query"] == {"term": {"StudyInstanceUID": "ST"}}
    assert study_aggs["aggs"] == {
        "last": {"max": {"field": "last_received_at"}},
        "modalities": {"terms": {"field": "Modality", "size": 100}},
    }
    series_update, study_update = cluster.sent("POST", "/t-(series|studies)/_update/S?T?")
    assert series_update.body == {"doc": {"first_received_at": 1.0, "last_received_at": 4.0}}
    assert study_update.body == {
        "doc": {"last_received_at": 7.0, "ModalitiesInStudy": ["CT", "SR"]}
    }
    assert series_update.params == {"retry_on_conflict": "50", "refresh": "false"}


def test_study_field_propagation_runs_again_after_conflicts(
    os_index: OpenSearchIndex, cluster: Cluster
) -> None:
    study = {"StudyInstanceUID": "ST", "PatientName": "A"}
    cluster.on(
        "POST",
        "/_mget",
        (200, {"docs": [{"_index": "t-studies", "_id": "ST", "found": True, "_source": study}]}),
    )
    cluster.on(
        "POST",
        "/t-series/_update_by_query",
        (200, {"updated": 3, "version_conflicts": 1}),
        (200, {"updated": 1, "version_conflicts": 0}),
    )
    os_index.upsert_instance(record("1", PatientName="B"))
    assert len(cluster.sent("POST", "/t-series/_update_by_query")) == 2


# -- completion ---------------------------------------------------------------------------------


def series_doc(**values: Any) -> tuple[int, Any]:
    source = {**SeriesRecord("S", "ST", last_received_at=10.0).to_dict(), **values}
    return 200, {"_id": "S", "found": True, "_seq_no": 7, "_primary_term": 2, "_source": source}


def test_mark_series_complete_is_a_compare_and_set(
    os_index: OpenSearchIndex, cluster: Cluster
) -> None:
    cluster.on("GET", "/t-series/_doc/S", series_doc(version=1))
    done = os_index.mark_series_complete("S", 10.0)
    assert done is not None
    assert (done.SeriesInstanceUID, done.complete, done.version) == ("S", True, 2)
    (update,) = cluster.sent("POST", "/t-series/_update/S")
    assert update.params == {"if_seq_no": "7", "if_primary_term": "2", "refresh": "false"}
    assert update.body == {"doc": {"complete": True, "version": 2}}


def test_a_sweeper_that_lost_the_race_gets_none(
    os_index: OpenSearchIndex, cluster: Cluster
) -> None:
    cluster.on("GET", "/t-series/_doc/S", series_doc())
    cluster.on("POST", "/t-series/_update/S", CONFLICT)
    assert os_index.mark_series_complete("S", 10.0) is None


def test_completion_is_refused_without_a_write_when_state_moved_on(
    os_index: OpenSearchIndex, cluster: Cluster
) -> None:
    cluster.on("GET", "/t-series/_doc/S", series_doc(complete=True), series_doc())
    assert os_index.mark_series_complete("S", 10.0) is None  # already complete
    assert os_index.mark_series_complete("S", 9.0) is None  # another instance arrived
    assert os_index.mark_series_complete("S", 10.0) is None  # no such series (404)
    assert cluster.sent("POST", "/t-series/_update/S") == []


def test_idle_series(os_index: OpenSearchIndex, cluster: Cluster) -> None:
    cluster.on("POST", "/t-series/_search", _hits(_hit(SeriesRecord("S", "ST").to_dict())))
    assert [s.SeriesInstanceUID for s in os_index.idle_series(60.0)] == ["S"]
    (body,) = cluster.searches("t-series")
    assert body["query"] == _bool(
        [{"term": {"complete": False}}, {"range": {"last_received_at": {"lt": 60.0}}}]
    )
    assert body["sort"] == [
        {"last_received_at": {"order": "asc"}},
        {"SeriesInstanceUID": {"order": "asc"}},
    ]


# -- reading records ----------------------------------------------------------------------------


def test_get_instance_reads_the_header(os_index: OpenSearchIndex, cluster: Cluster) -> None:
    stored = record("1", header={"00100010": {"vr": "PN"}}, StudyDate="20240105")
    cluster.on(
        "GET",
        "/t-instances/_doc/1",
        (
            200,
            {
                "_id": "1",
                "found": True,
                "_seq_no": 1,
                "_primary_term": 1,
                "_source": stored.to_dict(with_header=True),
            },
        ),
    )
    assert os_index.get_instance("1") == stored
    assert os_index.get_instance("2") is None
    assert cluster.sent("GET", "/t-instances/_doc/1")[0].params == {}


# -- run outputs --------------------------------------------------------------------------------


def output(key: str, **values: Any) -> RunOutput:
    values.setdefault("workflow", "seg")
    values.setdefault("run_id", "manual__2026-01-01T00:00:00+00:00")
    values.setdefault("step", "mask")
    return RunOutput(object_key=key, **values)


def test_run_outputs_are_indexed_in_one_bulk_keyed_by_object_key(
    os_index: OpenSearchIndex, cluster: Cluster
) -> None:
    first = output("runs/seg/r/mask/1.2/mask.nii.gz", SeriesInstanceUID="1.2", size=7)
    second = output("runs/seg/r/report/all/summary.csv", step="report", created_at=1.5)
    os_index.add_run_outputs([first, second])
    [bulk] = cluster.sent("POST", "/_bulk")
    assert bulk.body == [
        {"index": {"_index": "t-runs", "_id": first.object_key}},
        first.to_dict(),
        {"index": {"_index": "t-runs", "_id": second.object_key}},
        second.to_dict(),
    ]
    assert bulk.params == {"refresh": "false"}
    # Every field of the document is mapped (the index is strict).
    assert set(first.to_dict()) == set(PROPERTIES["runs"])


def test_no_run_outputs_send_nothing(os_index: OpenSearchIndex, cluster: Cluster) -> None:
    os_index.add_run_outputs([])
    assert cluster.requests == []


def test_object_keys_longer_than_an_id_are_refused(
    os_index: OpenSearchIndex, cluster: Cluster
) -> None:
    long_key = "runs/seg/r/mask/1.2/" + "x" * 500
    with pytest.raises(InvalidRecord, match="at most 512 bytes"):
        os_index.add_run_outputs([output("runs/seg/r/mask/1.2/ok.json"), output(long_key)])
    assert cluster.requests == []  # nothing of the batch was written


def test_a_refused_run_output_is_an_error(os_index: OpenSearchIndex, cluster: Cluster) -> None:
    item = {"_index": "t-runs", "_id": "k", "status": 400, "error": {"type": "mapper_exception"}}
    cluster.on("POST", "/_bulk", (200, {"errors": True, "items": [{"index": item}]}))
    with pytest.raises(RuntimeError, match="write run outputs refused: 400 mapper_exception"):
        os_index.add_run_outputs([output("k")])


@pytest.mark.parametrize(
    ("fields", "query"),
    [
        ({}, {"match_all": {}}),
        (dict(workflow="seg"), _bool([term("workflow", "seg")])),
        (
            dict(workflow="seg", run_id="r:1", series_instance_uid="1.2"),
            _bool(
                [
                    term("workflow", "seg"),
                    term("run_id", "r:1"),
                    term("SeriesInstanceUID", "1.2"),
                ]
            ),
        ),
        (dict(series_instance_uid="1.2"), _bool([term("SeriesInstanceUID", "1.2")])),
    ],
    ids=str,
)
def test_find_run_outputs_filters_by_terms_sorted_by_object_key(
    os_index: OpenSearchIndex, cluster: Cluster, fields: dict[str, str], query: dict[str, Any]
) -> None:
    assert os_index.find_run_outputs(**fields) == []
    assert cluster.searches("t-runs") == [
        {
            "query": query,
            "sort": [{"object_key": {"order": "asc"}}],
            "size": cluster_module.PAGE_SIZE,
            "_source": True,
            "track_total_hits": False,
        }
    ]


def test_found_run_outputs_are_read_from_source_page_by_page(
    os_index: OpenSearchIndex, cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    small_pages(monkeypatch, 2)
    outputs = [output(f"runs/seg/r/mask/1.2/{n}.json", size=n) for n in range(3)]
    hits = [{"_id": o.object_key, "_source": o.to_dict(), "sort": [o.object_key]} for o in outputs]
    cluster.on("POST", "/t-runs/_search", _hits(*hits[:2]), _hits(hits[2]))
    assert os_index.find_run_outputs(workflow="seg") == outputs
    pages = cluster.searches("t-runs")
    assert "search_after" not in pages[0]
    assert pages[1]["search_after"] == [outputs[1].object_key]


# -- health, errors, settings -------------------------------------------------------------------


def test_check_reports_a_red_cluster(os_index: OpenSearchIndex, cluster: Cluster) -> None:
    os_index.check()
    assert len(cluster.sent("GET", "/_cluster/health/t-studies,t-series,t-instances,t-runs")) == 1
    cluster.on("GET", "/_cluster/health/.*", (200, {"status": "red", "unassigned_shards": 3}))
    with pytest.raises(IndexUnavailable, match=r"are red \(3 shards unassigned\)"):
        os_index.check()


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ((503, {"error": {"type": "cluster_block_exception"}, "status": 503}), "503"),
        ((429, {"error": {"type": "es_rejected_execution_exception"}}), "429"),
        ((401, {"error": {"type": "security_exception"}}), "credentials refused"),
        ((403, {"error": {"type": "security_exception"}}), "credentials refused"),
    ],
    ids=["503", "429", "401", "403"],
)
def test_cluster_failures_are_index_unavailable(
    os_index: OpenSearchIndex, cluster: Cluster, answer: tuple[int, Any], reason: str
) -> None:
    cluster.on("POST", "/t-series/_search", *[answer] * 4)  # the client retries 5xx 3 times
    with pytest.raises(IndexUnavailable, match=reason):
        os_index.find_series(Query())


def test_an_unreachable_cluster_is_index_unavailable(cluster: Cluster) -> None:
    def refuse(request: Request) -> tuple[int, Any]:
        raise TransportConnectionError("N/A", "Connection refused", None)

    cluster.on("PUT", "/_index_template/t-studies", refuse, refuse, refuse, refuse)
    client = OpenSearch(
        hosts=["http://os.test:9200"], connection_class=connection_class(cluster), max_retries=0
    )
    handle = OpenSearchIndex(client, prefix="t", where="OpenSearch http://os.test:9200")
    with pytest.raises(
        IndexUnavailable, match=r"os\.test:9200: create indices: Connection refused"
    ):
        handle.check()
    with pytest.raises(IndexUnavailable, match="Connection refused"):
        handle.find_studies(Query())


def test_clear_deletes_and_recreates_the_indices(
    os_index: OpenSearchIndex, cluster: Cluster
) -> None:
    os_index.clear()
    assert [(r.method, r.path) for r in cluster.requests][:4] == [
        ("GET", "/_index_template/t-*"),
        ("DELETE", "/t-studies,t-series,t-instances,t-runs"),
        ("GET", "/_index_template/t-*"),
        ("PUT", "/_index_template/t-studies"),
    ]
    assert cluster.requests[1].params == {"ignore_unavailable": "true"}
    assert len(cluster.sent("PUT", "/t-(studies|series|instances|runs)")) == 4


def test_from_settings_builds_the_client(cluster: Cluster, tmp_path: Path) -> None:
    settings = IndexSettings(
        backend="opensearch",
        opensearch_url="https://os.example:9443",
        opensearch_username="openjip",
        opensearch_password="s3cret",
        opensearch_index_prefix="site1",
        opensearch_verify_certs=False,
        opensearch_ca_certs=tmp_path / "ca.pem",
        opensearch_timeout_seconds=3.5,
        opensearch_refresh="wait_for",
    )
    handle = OpenSearchIndex.from_settings(settings, connection_class=connection_class(cluster))
    kwargs = cluster.connection_kwargs
    assert (kwargs["host"], kwargs["port"], kwargs["use_ssl"]) == ("os.example", 9443, True)
    assert kwargs["http_auth"] == ("openjip", "s3cret")
    assert (kwargs["verify_certs"], kwargs["ca_certs"]) == (False, str(tmp_path / "ca.pem"))
    assert kwargs["timeout"] == 3.5
    assert kwargs["pool_maxsize"] == 32
    handle.upsert_instance(record("1"))
    assert {r.path for r in cluster.sent("POST", "/_bulk")} == {"/_bulk"}
    assert all(r.params["refresh"] == "wait_for" for r in cluster.sent("POST", "/_bulk"))
    assert cluster.sent("PUT", "/site1-series")
    assert "s3cret" not in repr(handle)


def test_open_index_chooses_opensearch(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("OPENJIP_HOME", str(tmp_path))
    monkeypatch.setenv("OPENJIP_INDEX__BACKEND", "opensearch")
    monkeypatch.setenv("OPENJIP_INDEX__OPENSEARCH_URL", "http://user:pw@os.example:9200")
    handle = open_index(Settings())
    assert isinstance(handle, OpenSearchIndex)
    assert repr(handle) == "OpenSearchIndex('OpenSearch http://os.example:9200', prefix='openjip')"
    handle.close()
