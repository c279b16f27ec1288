"""A synthetic chest in Hounsfield units: the anatomy of the CT phantom, slice by slice.

The patient lies supine, head first; coordinates are DICOM patient coordinates (LPS, mm): x grows
towards the patient's left, y towards the back, z towards the head. Organs are ellipses and
circles drawn in painter's order into a slice, each only inside its bounding box so a 512² slice
costs a few milliseconds. Values follow typical CT: air -1000, fat -100, soft tissue 40,
lung -850, liver 60, cancellous bone 400, cortical bone 1000.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

AIR_HU = -1000
FAT_HU = -100
SOFT_TISSUE_HU = 40
LUNG_HU = -850
BLOOD_HU = 45
LIVER_HU = 60
DISC_HU = 80
LESION_HU = 35
CANCELLOUS_BONE_HU = 400
CORTICAL_BONE_HU = 1000
RIB_HU = 800

CHEST_WALL_MM = 14.0
"""Muscle and ribs between the subcutaneous fat and the lungs."""

HUImage = npt.NDArray[np.int16]


@dataclass(frozen=True)
class Lesion:
    """A solid nodule inside a lung: a sphere of soft tissue a segmentation should find."""

    x: float
    y: float
    z: float
    radius: float

    def radius_at(self, z: float) -> float:
        """Radius of the lesion's cross-section in the axial plane at ``z`` (0 if outside)."""
        dz = abs(z - self.z)
        return math.sqrt(self.radius**2 - dz**2) if dz < self.radius else 0.0


@dataclass(frozen=True)
class ChestAnatomy:
    """Sizes and positions (mm) of one patient's chest and upper abdomen.

    ``z_top`` is the uppermost slice; the lungs start a little below it and end at the
    diaphragm, ``z_diaphragm``, below which the liver fills the right side.
    """

    body_a: float
    body_b: float
    fat_thickness: float
    z_top: float
    z_diaphragm: float
    lung_apex: float
    lesion: Lesion

    @classmethod
    def random(
        cls, rng: np.random.Generator, *, slice_positions: npt.NDArray[np.float64]
    ) -> ChestAnatomy:
        """A plausible patient whose thorax fills the upper 70 % of the slices' z range.

        The nodule is centred on one of ``slice_positions`` so even a series of thick slices
        shows it.
        """
        z_top = float(slice_positions.max())
        length = z_top - float(slice_positions.min())
        scale = rng.uniform(0.9, 1.1)
        body_a, body_b = 165.0 * scale, 115.0 * scale
        fat = float(rng.uniform(8.0, 20.0))
        thorax_a, thorax_b = _thorax_axes(body_a, body_b, fat)
        lung_apex = z_top - 0.05 * length
        z_diaphragm = z_top - 0.7 * length
        wanted_z = lung_apex - rng.uniform(0.4, 0.65) * (lung_apex - z_diaphragm)
        z = float(slice_positions[np.argmin(np.abs(slice_positions - wanted_z))])
        depth = (lung_apex - z) / (lung_apex - z_diaphragm) if length > 0 else 0.5
        lung_a, lung_b = _lung_axes(thorax_a, thorax_b, _lung_profile(depth))
        # Small enough to sit wholly inside the right lung's cross-section at its height.
        radius = float(rng.uniform(6.0, 14.0))
        radius = max(min(radius, 0.5 * min(lung_a, lung_b) - 2.0), 3.0)
        reach_a = max(lung_a - radius - 5.0, 0.0)
        reach_b = max(lung_b - radius - 5.0, 0.0)
        angle = rng.uniform(0.0, 2.0 * math.pi)
        cx, cy = _lung_centre(thorax_a, thorax_b, side=-1)
        lesion = Lesion(
            x=cx + 0.5 * reach_a * math.cos(angle),
            y=cy + 0.5 * reach_b * math.sin(angle),
            z=z,
            radius=radius,
        )
        return cls(
            body_a=body_a,
            body_b=body_b,
            fat_thickness=fat,
            z_top=z_top,
            z_diaphragm=z_diaphragm,
            lung_apex=lung_apex,
            lesion=lesion,
        )


def _thorax_axes(body_a: float, body_b: float, fat: float) -> tuple[float, float]:
    """Semi-axes of the chest cavity, inside fat and chest wall."""
    return body_a - fat - CHEST_WALL_MM, body_b - fat - CHEST_WALL_MM


def _lung_centre(thorax_a: float, thorax_b: float, *, side: int) -> tuple[float, float]:
    """Centre of the right (side=-1) or left (side=+1) lung."""
    return side * 0.52 * thorax_a, -0.05 * thorax_b


def _lung_axes(thorax_a: float, thorax_b: float, fraction: float) -> tuple[float, float]:
    """Semi-axes of a lung at ``fraction`` of its full width; the widest fits the cavity."""
    return 0.4 * thorax_a * fraction, 0.78 * thorax_b * fraction


def _lung_profile(depth: float) -> float:
    """Width of the lungs from apex (depth 0) to diaphragm (depth 1), relative to the widest."""
    if depth <= 0.0 or depth >= 1.0:
        return 0.0
    # Narrow at the apex, widest above the dome of the diaphragm, which then cuts them off.
    return math.sin(0.5 * math.pi * min(depth / 0.85, 1.0)) ** 0.5


class SliceGrid:
    """The pixel centres of one axial slice, as 1-D coordinate vectors (mm)."""

    def __init__(self, rows: int, columns: int, spacing: float) -> None:
        self.rows = rows
        self.columns = columns
        self.spacing = spacing
        self.x0 = -(columns - 1) / 2.0 * spacing
        self.y0 = -(rows - 1) / 2.0 * spacing
        self.x = (self.x0 + np.arange(columns) * spacing).astype(np.float32)
        self.y = (self.y0 + np.arange(rows) * spacing).astype(np.float32)

    def fill_ellipse(
        self, image: HUImage, value: int, cx: float, cy: float, a: float, b: float
    ) -> None:
        """Set every pixel inside the ellipse centred at (cx, cy) with semi-axes a, b."""
        if a <= 0 or b <= 0:
            return
        c0 = max(int((cx - a - self.x0) / self.spacing), 0)
        c1 = min(int((cx + a - self.x0) / self.spacing) + 2, self.columns)
        r0 = max(int((cy - b - self.y0) / self.spacing), 0)
        r1 = min(int((cy + b - self.y0) / self.spacing) + 2, self.rows)
        if c0 >= c1 or r0 >= r1:
            return
        dx = ((self.x[c0:c1] - cx) / a) ** 2
        dy = ((self.y[r0:r1] - cy) / b) ** 2
        inside = dy[:, None] + dx[None, :] <= 1.0
        image[r0:r1, c0:c1][inside] = value


def hu_slice(anatomy: ChestAnatomy, grid: SliceGrid, z: float) -> HUImage:
    """The noiseless slice at height ``z`` in HU."""
    image = np.full((grid.rows, grid.columns), AIR_HU, dtype=np.int16)
    a, b = anatomy.body_a, anatomy.body_b
    fat = anatomy.fat_thickness
    grid.fill_ellipse(image, FAT_HU, 0.0, 0.0, a, b)
    grid.fill_ellipse(image, SOFT_TISSUE_HU, 0.0, 0.0, a - fat, b - fat)

    depth = (anatomy.lung_apex - z) / (anatomy.lung_apex - anatomy.z_diaphragm)
    in_thorax = z > anatomy.z_diaphragm
    if not in_thorax or depth > 0.8:
        # The liver rises under the right dome of the diaphragm.
        grid.fill_ellipse(image, LIVER_HU, -0.35 * a, -0.05 * b, 0.5 * a, 0.65 * b)
    lung_fraction = _lung_profile(depth)
    thorax = _thorax_axes(a, b, fat)
    if lung_fraction > 0:
        for side in (-1, 1):
            cx, cy = _lung_centre(*thorax, side=side)
            la, lb = _lung_axes(*thorax, lung_fraction)
            grid.fill_ellipse(image, LUNG_HU, cx, cy, la, lb)
        lesion_radius = anatomy.lesion.radius_at(z)
        if lesion_radius > 0:
            les = anatomy.lesion
            grid.fill_ellipse(image, LESION_HU, les.x, les.y, lesion_radius, lesion_radius)
    if in_thorax and depth > 0.35:
        grid.fill_ellipse(image, BLOOD_HU, 0.1 * a, -0.2 * b, 0.33 * a, 0.4 * b)  # heart
    grid.fill_ellipse(image, BLOOD_HU, 0.1 * a, 0.38 * b, 12.0, 12.0)  # aorta
    _draw_spine(image, grid, anatomy, z)
    if in_thorax:
        _draw_ribs(image, grid, anatomy, z)
    return image


def _draw_spine(image: HUImage, grid: SliceGrid, anatomy: ChestAnatomy, z: float) -> None:
    """A vertebra (cortex, cancellous core, spinous process) or, every 30 mm, a disc."""
    radius = 18.0
    # The vertebral body bulges into the back of the chest cavity.
    cy = _thorax_axes(anatomy.body_a, anatomy.body_b, anatomy.fat_thickness)[1] - 10.0
    if (z % 30.0) < 6.0:
        grid.fill_ellipse(image, DISC_HU, 0.0, cy, radius, radius)
    else:
        grid.fill_ellipse(image, CORTICAL_BONE_HU, 0.0, cy, radius, radius)
        grid.fill_ellipse(image, CANCELLOUS_BONE_HU, 0.0, cy, radius - 2.5, radius - 2.5)
    grid.fill_ellipse(image, CORTICAL_BONE_HU, 0.0, cy + radius + 10.0, 5.0, 9.0)
    grid.fill_ellipse(image, SOFT_TISSUE_HU, 0.0, cy + radius + 3.0, 6.0, 5.0)  # spinal canal


def _draw_ribs(image: HUImage, grid: SliceGrid, anatomy: ChestAnatomy, z: float) -> None:
    """Rib cross-sections along the chest wall; ribs slope, so each shows in bands of z."""
    # Ribs lie in the chest wall, outside the lungs, so each shows as an island of bone.
    a = anatomy.body_a - anatomy.fat_thickness - CHEST_WALL_MM / 2
    b = anatomy.body_b - anatomy.fat_thickness - CHEST_WALL_MM / 2
    for degrees in range(-50, 231, 20):
        if degrees == 90:  # straight behind: the spine, drawn separately
            continue
        theta = math.radians(degrees)
        if ((z + 0.1 * abs(degrees - 90)) % 25.0) < 11.0:
            grid.fill_ellipse(image, RIB_HU, a * math.cos(theta), b * math.sin(theta), 6.0, 6.0)
    sternum_y = -(anatomy.body_b - anatomy.fat_thickness - CHEST_WALL_MM / 2)
    grid.fill_ellipse(image, RIB_HU, 0.0, sternum_y, 14.0, 6.0)
