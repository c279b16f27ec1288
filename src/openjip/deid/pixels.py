"""Pixel-cleaning rules: rectangles blacked out in the pixels of instances a rule matches (by
attribute values: manufacturer, model, image size...), as RSNA CTP's DicomPixelAnonymizer does.

An instance suspected of burned-in text that a rule covers is cleaned and written instead of
quarantined. Only native (uncompressed) pixel data of whole bytes per sample are cleaned, in
place in the encoded bytes (every frame, every sample, planar or interleaved); compressed pixel
data stay quarantined, since decoding and re-encoding them would change every pixel.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydicom.dataset import Dataset

from openjip.config.deid import PixelRule

PIXEL_DATA = 0x7FE00010
CLEANABLE_PHOTOMETRIC = frozenset(
    {"MONOCHROME1", "MONOCHROME2", "RGB", "PALETTE COLOR", "YBR_FULL"}
)
"""Every sample of a pixel stored apart: a rectangle of bytes is a rectangle of pixels."""


class CannotClean(ValueError):
    """A rule matches but the pixels cannot be cleaned in place (the reason says why)."""


def matching_rule(dataset: Dataset, rules: Sequence[PixelRule]) -> PixelRule | None:
    """The first rule every value of whose ``match`` the dataset has."""
    for rule in rules:
        if all(_same(dataset.get(keyword), wanted) for keyword, wanted in rule.match.items()):
            return rule
    return None


def _same(element: object, wanted: str | int) -> bool:
    if element is None:
        return False
    value = getattr(element, "value", element)
    if isinstance(wanted, int):
        try:
            return int(value) == wanted  # type: ignore[call-overload]
        except (TypeError, ValueError):
            return False
    return str(value).strip() == wanted


def clean_pixels(dataset: Dataset, rule: PixelRule) -> None:
    """Black out ``rule``'s regions in every frame of the native pixel data of ``dataset``;
    :class:`CannotClean` when they are not native bytes it can address."""
    meta = getattr(dataset, "file_meta", None)
    syntax = meta.get("TransferSyntaxUID") if meta is not None else None
    if syntax is None or syntax.is_compressed:
        raise CannotClean("a pixel rule matches, but compressed pixel data are not cleaned")
    photometric = str(dataset.get("PhotometricInterpretation", ""))
    bits = int(dataset.get("BitsAllocated", 0))
    if photometric not in CLEANABLE_PHOTOMETRIC or bits % 8 or PIXEL_DATA not in dataset:
        raise CannotClean(f"a pixel rule matches, but {photometric} {bits}-bit pixels are not")
    rows, columns = int(dataset.Rows), int(dataset.Columns)
    samples = int(dataset.get("SamplesPerPixel", 1))
    frames = int(dataset.get("NumberOfFrames", 1) or 1)
    planar = samples > 1 and int(dataset.get("PlanarConfiguration", 0)) == 1
    size = bits // 8
    pixels = bytearray(dataset.PixelData)
    if len(pixels) < frames * rows * columns * samples * size:
        raise CannotClean("a pixel rule matches, but the pixel data are shorter than the image")
    for left, top, width, height in rule.regions:
        x0, x1 = max(0, left), min(columns, left + width)
        for frame in range(frames):
            for plane in range(samples if planar else 1):
                base = (
                    (frame * samples + plane) * rows * columns if planar else frame * rows * columns
                )
                step = size if planar else size * samples
                for row in range(max(0, top), min(rows, top + height)):
                    start = (base + row * columns) * step
                    pixels[start + x0 * step : start + x1 * step] = bytes((x1 - x0) * step)
    dataset.PixelData = bytes(pixels)
    dataset.BurnedInAnnotation = "NO"  # what the rule covers is gone
