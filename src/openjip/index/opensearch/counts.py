"""Count maintenance of the OpenSearch backend: the changes one write makes to series and
study documents, merged per document and sent as scripted upserts.

Each change is a set of deltas (instances, size, series) plus received times and the latest
non-empty fields; the painless scripts apply them in one atomic read-modify-write per document,
so concurrent writers' deltas add up. A count that drops to zero deletes the document.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from openjip.index.base import InstanceRecord, SeriesRecord, StudyRecord
from openjip.index.opensearch.mappings import to_document

RETRY_ON_CONFLICT = 50
"""Retries of a scripted count update that raced other writers of the same document (each is
an in-memory re-run on the primary shard; running out would leave a write uncounted)."""
_INSTANCE_FIELDS = {f.name for f in fields(InstanceRecord)}
STUDY_FIELDS = tuple(
    f.name
    for f in fields(StudyRecord)
    if f.name in _INSTANCE_FIELDS and f.name not in ("StudyInstanceUID", "projects")
)
"""Fields of a study document taken from its instances (the latest non-empty value wins);
``projects`` is not one of them: a study's projects are the union of its instances'."""
SERIES_STUDY_FIELDS = tuple(f.name for f in fields(SeriesRecord) if f.name in STUDY_FIELDS)
"""Study fields repeated in each series document (queries name them, SeriesRecord has them)."""
SERIES_OWN_FIELDS = tuple(
    f.name
    for f in fields(SeriesRecord)
    if f.name in _INSTANCE_FIELDS
    and f.name not in STUDY_FIELDS
    and f.name not in {"SeriesInstanceUID", "StudyInstanceUID", "size", "projects"}
)
"""Series fields of a series document taken from its instances (size is a sum, not taken)."""

# Painless scripts of the count updates; params hold deltas, so concurrent updates add up.
# A document lives while it has instances: a study's series count may be 0 for a moment (its
# first series counted by a writer that has not updated the study yet), so it decides nothing.
SERIES_SCRIPT = """
def s = ctx._source;
s.NumberOfSeriesRelatedInstances += params.instances;
if (s.NumberOfSeriesRelatedInstances <= 0) {
  ctx.op = 'delete';
} else {
  s.size += params.size;
  if (params.first != null && params.first < s.first_received_at) {
    s.first_received_at = params.first;
  }
  if (params.last != null && params.last > s.last_received_at) {
    s.last_received_at = params.last;
  }
  if (params.reopen) {
    s.complete = false;
  }
  for (entry in params.fields.entrySet()) {
    s[entry.getKey()] = entry.getValue();
  }
  ADD_PROJECTS
}
""".strip()
STUDY_SCRIPT = """
def s = ctx._source;
s.NumberOfStudyRelatedSeries += params.series;
s.NumberOfStudyRelatedInstances += params.instances;
if (s.NumberOfStudyRelatedInstances <= 0) {
  ctx.op = 'delete';
} else {
  if (params.last != null && params.last > s.last_received_at) {
    s.last_received_at = params.last;
  }
  for (m in params.modalities) {
    if (!s.ModalitiesInStudy.contains(m)) {
      s.ModalitiesInStudy.add(m);
    }
  }
  for (entry in params.fields.entrySet()) {
    s[entry.getKey()] = entry.getValue();
  }
  ADD_PROJECTS
}
""".strip()
_ADD_PROJECTS = """
if (s.projects == null) { s.projects = new ArrayList(); }
  for (p in params.projects) {
    if (!s.projects.contains(p)) { s.projects.add(p); }
  }
""".strip()
SERIES_SCRIPT = SERIES_SCRIPT.replace("ADD_PROJECTS", _ADD_PROJECTS)
STUDY_SCRIPT = STUDY_SCRIPT.replace("ADD_PROJECTS", _ADD_PROJECTS)
PROJECTS_SCRIPT = f"""
def s = ctx._source;
if (params.replace) {{ s.projects = new ArrayList(); }}
{_ADD_PROJECTS}
""".strip()
"""Adds ``params.projects`` to a study or series document (``params.replace``: only those)."""
SET_FIELDS_SCRIPT = """
for (entry in params.fields.entrySet()) {
  ctx._source[entry.getKey()] = entry.getValue();
}
""".strip()


def _fold(bounds: tuple[float | None, float | None], received: float) -> tuple[float, float]:
    first, last = bounds
    return (
        received if first is None else min(first, received),
        received if last is None else max(last, received),
    )


def _scripted_update(
    index: str, uid: str, script: str, params: dict[str, Any], upsert: dict[str, Any] | None
) -> list[dict[str, Any]]:
    """The two lines of a bulk update: a painless script over the deltas, and the document to
    insert instead when the target does not exist yet (``None`` for changes that only remove)."""
    body: dict[str, Any] = {"script": {"source": script, "lang": "painless", "params": params}}
    if upsert is not None:
        body["upsert"] = upsert
    header = {"_index": index, "_id": uid, "retry_on_conflict": RETRY_ON_CONFLICT}
    return [{"update": header}, body]


@dataclass
class _SeriesChange:
    """What happens to one series document: deltas, received times, latest non-empty fields."""

    study_uid: str
    instances: int = 0
    size: int = 0
    first: float | None = None
    last: float | None = None
    reopen: bool = False
    recount: bool = False
    fields: dict[str, Any] = field(default_factory=dict)
    projects: set[str] = field(default_factory=set)

    def actions(self, index: str, uid: str, study: dict[str, Any] | None) -> list[dict[str, Any]]:
        """The scripted update; it inserts the series when it is new, with the study fields
        that the study has and this change does not (a result series without them)."""
        params = {
            "instances": self.instances,
            "size": self.size,
            "first": self.first,
            "last": self.last,
            "reopen": self.reopen,
            "fields": self.fields,
            "projects": sorted(self.projects),
        }
        upsert = None
        if self.instances > 0:
            from_study = {name: (study or {}).get(name) for name in SERIES_STUDY_FIELDS}
            upsert = {
                **to_document(SeriesRecord(uid, self.study_uid)),
                **{name: value for name, value in from_study.items() if value},
                **self.fields,
                "projects": sorted(self.projects | set((study or {}).get("projects") or [])),
                "NumberOfSeriesRelatedInstances": self.instances,
                "size": self.size,
                "first_received_at": self.first,
                "last_received_at": self.last,
            }
        return _scripted_update(index, uid, SERIES_SCRIPT, params, upsert)


@dataclass
class _StudyChange:
    """What happens to one study document."""

    instances: int = 0
    series: int = 0
    last: float | None = None
    recount: bool = False
    modalities: set[str] = field(default_factory=set)
    fields: dict[str, Any] = field(default_factory=dict)
    projects: set[str] = field(default_factory=set)

    def actions(self, index: str, uid: str) -> list[dict[str, Any]]:
        params = {
            "instances": self.instances,
            "series": self.series,
            "last": self.last,
            "modalities": sorted(self.modalities),
            "fields": self.fields,
            "projects": sorted(self.projects),
        }
        upsert = None
        if self.instances > 0:
            upsert = {
                **to_document(StudyRecord(uid)),
                **self.fields,
                "projects": sorted(self.projects),
                "ModalitiesInStudy": sorted(self.modalities),
                "NumberOfStudyRelatedSeries": max(self.series, 0),
                "NumberOfStudyRelatedInstances": self.instances,
                "last_received_at": self.last,
            }
        return _scripted_update(index, uid, STUDY_SCRIPT, params, upsert)


@dataclass
class Changes:
    """The series and study changes of one write, merged per document."""

    series: dict[str, _SeriesChange] = field(default_factory=dict)
    studies: dict[str, _StudyChange] = field(default_factory=dict)

    def study(self, uid: str) -> _StudyChange:
        return self.studies.setdefault(uid, _StudyChange())

    def _series(self, uid: str, study_uid: str) -> _SeriesChange:
        return self.series.setdefault(uid, _SeriesChange(study_uid))

    def add(self, record: InstanceRecord) -> None:
        """A new instance: counted, its time folded into the bounds, its series reopened."""
        series = self._series(record.SeriesInstanceUID, record.StudyInstanceUID)
        series.instances += 1
        series.size += record.size
        series.reopen = True
        self.study(record.StudyInstanceUID).instances += 1
        self._merge(record, series)

    def replace(self, record: InstanceRecord, *, old_size: int, old_received: float) -> None:
        """A re-received instance: same count, size by the difference; if its time changed the
        bounds are re-aggregated (the old time may have been one of them)."""
        series = self._series(record.SeriesInstanceUID, record.StudyInstanceUID)
        series.size += record.size - old_size
        if record.received_at != old_received:
            series.recount = True
            self.study(record.StudyInstanceUID).recount = True
        self._merge(record, series)

    def remove(self, old: dict[str, Any]) -> None:
        """An instance gone from its series: uncounted, bounds re-aggregated."""
        series = self._series(old["SeriesInstanceUID"], old["StudyInstanceUID"])
        series.instances -= 1
        series.size -= old["size"]
        series.recount = True
        study = self.study(old["StudyInstanceUID"])
        study.instances -= 1
        study.recount = True

    def _merge(self, record: InstanceRecord, series: _SeriesChange) -> None:
        """Fold the received time into the bounds and take the record's non-empty fields: the
        latest non-empty value of each field wins (as in SQLite), so a result series without a
        StudyDescription does not blank the one its study was received with."""
        study = self.study(record.StudyInstanceUID)
        series.first, series.last = _fold((series.first, series.last), record.received_at)
        study.last = _fold((study.last, study.last), record.received_at)[1]
        for name in SERIES_STUDY_FIELDS + SERIES_OWN_FIELDS:
            value = getattr(record, name)
            if value not in ("", None):
                series.fields[name] = value
        for name in STUDY_FIELDS:
            value = getattr(record, name)
            if value not in ("", None):
                study.fields[name] = value
        if record.Modality:
            study.modalities.add(record.Modality)
        series.projects.update(record.projects)
        study.projects.update(record.projects)


def changed_fields(values: dict[str, Any], study: dict[str, Any] | None) -> dict[str, Any]:
    """Study fields of a write that differ from what an existing study had (``{}`` for a new
    study: its series are written with the fields already)."""
    if study is None:
        return {}
    return {
        name: values[name]
        for name in SERIES_STUDY_FIELDS
        if name in values and values[name] != study.get(name)
    }
