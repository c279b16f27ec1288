"""De-identification policies per project: what a project stores (``on_ingest``: only
de-identified data, the originals never reach storage) and what leaves it (``on_export``:
C-MOVE, C-GET and ``openjip retrieve`` give de-identified copies), from the ``deid`` section
of the settings.

The ingest and retrieve code know nothing of profiles: they ask :class:`ProjectPolicies` for a
rewrite of a project's instance (bytes in, de-identified bytes out; :class:`Refused` when an
instance may not be kept or sent, e.g. suspected burned-in text or an identifying value left).
Each rewrite is the profile of the project's options with the site's pseudonyms, so a
project's ingest, its exports, its workflow steps and ``openjip deidentify`` on the site give a
patient one pseudonym and a UID one new UID.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pydicom

from openjip.config import Settings
from openjip.config.deid import DeidPolicy, PixelRule
from openjip.deid.instance import Refused, deidentify_instance, read_source
from openjip.deid.profile import build_profile
from openjip.deid.pseudonyms import Pseudonyms, site_secret
from openjip.deid.reidentification import ReidentificationTable, table_path
from openjip.deid.walker import Deidentifier

Rewrite = Callable[[bytes], bytes]
"""A Part-10 instance in, the same instance de-identified out; raises :class:`Refused`."""


def rewrite_with(
    deidentifier: Deidentifier, project: str, table: ReidentificationTable | None = None
) -> Rewrite:
    """The rewrite of one project's profile: de-identify, encode, check (a leak refuses);
    with a ``table``, who each pseudonym is is kept in it."""

    def rewrite(data: bytes) -> bytes:
        source = read_source(data)
        patient_id = str(source.dataset.get("PatientID", "") or "")
        patient_name = str(source.dataset.get("PatientName", "") or "")
        done = deidentify_instance(source, deidentifier)
        if done.leaks:
            raise Refused(f"project {project}: an identifying value is left after de-identifying")
        if table is not None and (patient_id or patient_name):
            pseudonym = deidentifier.pseudonyms.patient(patient_id or patient_name)
            table.record(pseudonym, patient_id, patient_name)
        return done.data

    return rewrite


@dataclass(frozen=True)
class ProjectPolicies:
    """The projects of a site that de-identify on ingest or on export, with their profiles."""

    policies: dict[str, DeidPolicy]
    pseudonyms: Pseudonyms
    pixel_rules: tuple[PixelRule, ...] = ()
    home: Path = Path()
    """OPENJIP_HOME, where the re-identification tables of projects that ask are kept."""
    _rewrites: dict[str, Rewrite] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def for_site(cls, settings: Settings) -> ProjectPolicies | None:
        """The site's policies; ``None`` when no project has one (nothing is rewritten). The
        profiles are checked here, so bad options stop a service at its start."""
        policies = {
            name: policy
            for name, policy in settings.deid.projects.items()
            if policy.on_ingest or policy.on_export
        }
        if not policies:
            return None
        for policy in policies.values():
            build_profile(policy.options)  # ProfileError names a bad option
        pseudonyms = Pseudonyms(site_secret(settings.home_dir, settings.deid_secret_path))
        return cls(policies, pseudonyms, tuple(settings.deid.pixel_rules), settings.home_dir)

    def on_ingest(self, projects: Sequence[str]) -> Rewrite | None:
        """How an instance stored into ``projects`` is rewritten first (None: stored as is)."""
        return self._rewrite(projects, "on_ingest")

    def on_export(self, projects: Sequence[str]) -> Rewrite | None:
        """How an instance of ``projects`` is rewritten before it leaves (None: sent as is)."""
        return self._rewrite(projects, "on_export")

    def _rewrite(self, projects: Sequence[str], when: str) -> Rewrite | None:
        # An instance in several projects is de-identified if any of them asks; the first of
        # them (by name) gives the options.
        for project in sorted(projects):
            policy = self.policies.get(project)
            if policy is not None and getattr(policy, when):
                if project not in self._rewrites:
                    profile = build_profile(policy.options)
                    deidentifier = Deidentifier(
                        profile, self.pseudonyms, pixel_rules=self.pixel_rules
                    )
                    table = None
                    if policy.reidentification:
                        path = table_path(self.home, project)
                        table = ReidentificationTable(path, self.pseudonyms.secret)
                    self._rewrites[project] = rewrite_with(deidentifier, project, table)
                return self._rewrites[project]
        return None


def write_exported(data: bytes, folder: Path) -> Path:
    """Write a de-identified instance to ``folder/<study>/<series>/<sop>.dcm`` (its new UIDs;
    the originals would name the source), 0600; its path."""
    dataset = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
    target = folder / str(dataset.StudyInstanceUID) / str(dataset.SeriesInstanceUID)
    target.mkdir(parents=True, exist_ok=True)
    path = target / f"{dataset.SOPInstanceUID}.dcm"
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
    return path
