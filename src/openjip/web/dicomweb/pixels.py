"""Pixel data of one stored instance: frames as stored or decoded (pydicom with pylibjpeg),
and frames rendered to 8-bit images with the header's windowing (PS3.18 8.3.5, 9.5).

Decoding uses pydicom's own pixel pipeline, so a decoded frame holds exactly the values
``Dataset.pixel_array`` gives: colour is RGB after decoding, bit-packed data (1 bit) is
packed again little-endian-bitwise, multi-byte samples are little endian.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.encaps import get_frame
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue
from pydicom.pixels import apply_color_lut, apply_modality_lut, pixel_array
from pydicom.pixels.utils import get_expected_length

from openjip.web.dicomweb.errors import DicomWebError
from openjip.web.dicomweb.media import FrameEncoding, is_native

PIXEL_DATA = 0x7FE00010


@dataclass(frozen=True)
class Window:
    """A linear VOI window: values ``center ± width/2`` map onto 0-255."""

    center: float
    width: float

    @property
    def bounds(self) -> tuple[float, float]:
        """(lowest, highest) value shown."""
        half = max(self.width, 1.0) / 2
        return self.center - half, self.center + half


class StoredPixels:
    """The pixel data of one Part-10 instance read from the object store."""

    def __init__(self, data: bytes, where: str) -> None:
        try:
            self.dataset: Dataset = dcmread(io.BytesIO(data))
        except (InvalidDicomError, EOFError, OSError, ValueError) as error:
            raise DicomWebError(500, f"{where} cannot be read: {error}") from error
        if PIXEL_DATA not in self.dataset:
            raise DicomWebError(404, f"{where} has no pixel data")
        self.where = where
        self.transfer_syntax = str(self.dataset.file_meta.TransferSyntaxUID)
        self.frame_count = int(self.dataset.get("NumberOfFrames") or 1)

    def _require_frame(self, number: int) -> int:
        """The 0-based index of 1-based frame ``number``; 404 past the last frame."""
        if not 1 <= number <= self.frame_count:
            raise DicomWebError(
                404, f"{self.where} has frames 1-{self.frame_count}, not frame {number}"
            )
        return number - 1

    def frame(self, number: int, encoding: FrameEncoding) -> bytes:
        """Frame ``number`` (1-based) in ``encoding``."""
        index = self._require_frame(number)
        if encoding.decode or (is_native(self.transfer_syntax) and self._bits % 8):
            return self._decoded_bytes(index)
        pixel_bytes = self.dataset.PixelData
        if is_native(self.transfer_syntax):
            length = int(get_expected_length(self.dataset, unit="bytes")) // self.frame_count
            return bytes(pixel_bytes[index * length : (index + 1) * length])
        return get_frame(pixel_bytes, index, number_of_frames=self.frame_count)

    @property
    def _bits(self) -> int:
        return int(self.dataset.BitsAllocated)

    def decoded(self, number: int) -> np.ndarray:
        """Frame ``number`` (1-based) decoded, as pydicom's ``pixel_array`` gives it."""
        index = self._require_frame(number)
        try:
            return pixel_array(self.dataset, index=index)
        except (ValueError, RuntimeError, NotImplementedError, AttributeError) as error:
            raise DicomWebError(
                406,
                f"{self.where} in {self.transfer_syntax} cannot be decoded here ({error}); "
                "ask for transfer-syntax=* to receive it as stored",
            ) from error

    def _decoded_bytes(self, index: int) -> bytes:
        array = self.decoded(index + 1)
        if self._bits == 1:
            return np.packbits(array.astype(np.uint8).ravel(), bitorder="little").tobytes()
        return array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()

    def render(
        self, number: int, window: Window | None, viewport: tuple[int, int] | None
    ) -> Image.Image:
        """Frame ``number`` as an 8-bit image: modality LUT, then ``window`` (or the header's
        first window, or the frame's range), MONOCHROME1 inverted, scaled to fit ``viewport``."""
        array = self.decoded(number)
        photometric = str(self.dataset.get("PhotometricInterpretation", "MONOCHROME2"))
        if photometric == "PALETTE COLOR":
            array = apply_color_lut(array, self.dataset)
        if array.ndim == 3 and array.shape[-1] in (3, 4):
            image = Image.fromarray(_to_uint8(array[..., :3], _full_range(array)), "RGB")
        else:
            values = apply_modality_lut(array, self.dataset).astype(np.float64)
            bounds = (window or self._header_window() or _range_window(values)).bounds
            pixels = _to_uint8(values, bounds)
            if photometric == "MONOCHROME1":
                pixels = 255 - pixels
            image = Image.fromarray(pixels, "L")
        if viewport is not None:
            image = _fit(image, viewport)
        return image

    def _header_window(self) -> Window | None:
        center, width = self.dataset.get("WindowCenter"), self.dataset.get("WindowWidth")
        if center is None or width is None:
            return None
        return Window(float(_first(center)), float(_first(width)))


def _first(value: Any) -> Any:
    """The first of a multi-valued element's values (windows may come in several)."""
    return value[0] if isinstance(value, MultiValue | list) else value


def _range_window(values: np.ndarray) -> Window:
    low, high = float(values.min()), float(values.max())
    return Window((low + high) / 2, max(high - low, 1.0))


def _full_range(array: np.ndarray) -> tuple[float, float]:
    if array.dtype == np.uint8:
        return 0.0, 255.0
    return float(array.min()), float(max(array.max(), array.min() + 1))


def _to_uint8(values: np.ndarray, bounds: tuple[float, float]) -> np.ndarray:
    low, high = bounds
    scaled = (values.astype(np.float64) - low) * (255.0 / (high - low))
    return np.clip(scaled, 0, 255).astype(np.uint8)


def _fit(image: Image.Image, viewport: tuple[int, int]) -> Image.Image:
    """``image`` scaled (up or down, aspect kept) to fit ``viewport``."""
    width, height = viewport
    scale = min(width / image.width, height / image.height)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS if scale < 1 else Image.Resampling.BILINEAR)
