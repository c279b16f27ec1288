"""The three-site example of docs/federated-learning.md: each site's own cohort of phantom chest
CTs from its own scanner, a nodule present in some.

Sites differ as hospitals do: scanner (Manufacturer), image noise and how often a nodule is
present. At the noisiest site noise alone leaves holes in the lung mask, so a rule learnt at the
quietest site alone ("any soft tissue inside the lungs") fails there; the pooled or federated
model has to weigh the size of the largest hole.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from openjip.phantom import write_ct_series

FEATURES = [
    "log_hole_volume",
    "log_largest_hole",
    "hole_fraction_pct",
    "lung_hu_mean",
    "lung_hu_std",
]
"""The features of operators/nodule-features the example's model uses."""


@dataclass(frozen=True)
class ExampleSite:
    """One site's scanner and cohort."""

    name: str
    manufacturer: str
    noise_hu: float
    nodule_every: int
    """Every n-th patient has a nodule (1: all, 2: half, 3: a third, ...)."""


SITES = (
    ExampleSite("a", "SIEMENS", 10.0, 2),
    ExampleSite("b", "GE", 60.0, 3),
    ExampleSite("c", "CANON", 180.0, 2),
)


def write_cohort(site: ExampleSite, out_dir: Path, *, patients: int, size: int = 96) -> list[Path]:
    """One series per patient (24 slices of ``size``²) under ``out_dir/<PatientID>/``."""
    files: list[Path] = []
    for number in range(patients):
        patient = f"{site.name.upper()}-{number + 1:04d}"
        files += write_ct_series(
            out_dir / patient,
            slices=24,
            rows=size,
            columns=size,
            patient_id=patient,
            seed=number,
            noise_hu=site.noise_hu,
            nodule=number % site.nodule_every == 0,
            manufacturer=site.manufacturer,
        )
    return files
