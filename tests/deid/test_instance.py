"""The pixels are copied, not re-encoded, wherever that is safe; a run with several workers
writes the same files as one with one, and two sources that would give one output are caught
before the second is written over the first."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pydicom
from pydicom.data import get_testdata_file

from openjip.deid.instance import deidentify_instance, find_leaks, read_source
from openjip.deid.run import deidentify_files

from .conftest import deidentifier


def _file(name: str) -> Path:
    return Path(str(get_testdata_file(name)))


def test_pixel_data_is_copied_as_encoded_when_it_is_whole_and_last(ct_phantom: list[Path]) -> None:
    for path in (ct_phantom[0], _file("693_UNCI.dcm"), _file("JPEG2000.dcm")):
        source = read_source(path)
        assert source.pixels_at is not None, path.name
        done = deidentify_instance(source, deidentifier(), quarantine=False)
        assert bytes(done.pixels) == path.read_bytes()[source.pixels_at :]
        assert done.data.endswith(path.read_bytes()[source.pixels_at :])
        assert pydicom.dcmread(path).PixelData == pydicom.dcmread(io.BytesIO(done.data)).PixelData


def test_pydicom_encodes_the_pixels_of_unusual_sources() -> None:
    # Truncated pixel data; a dataset encoded implicit VR under an explicit VR transfer syntax;
    # big endian; trailing padding after the pixels.
    for name in ("MR_truncated.dcm", "SC_rgb_jpeg.dcm", "MR_small_bigendian.dcm", "CT_small.dcm"):
        assert read_source(_file(name)).pixels_at is None, name


def test_four_workers_write_what_one_writes(ct_phantom: list[Path], tmp_path: Path) -> None:
    one = deidentify_files(ct_phantom, tmp_path / "one", deidentifier())
    two = deidentify_files(ct_phantom, tmp_path / "two", deidentifier(), workers=4)
    assert one.instances == two.instances == len(ct_phantom)
    assert one.attributes == two.attributes and two.check_passed
    for path in (tmp_path / "one").iterdir():
        assert (tmp_path / "two" / path.name).read_bytes() == path.read_bytes()
        assert path.stat().st_mode & 0o077 == 0  # a patient's, once


def test_a_second_source_of_the_same_instance_is_a_failure_not_a_loss(
    ct_phantom: list[Path], tmp_path: Path
) -> None:
    copy = tmp_path / "copy.dcm"
    shutil.copy(ct_phantom[0], copy)
    report = deidentify_files([ct_phantom[0], copy], tmp_path / "out", deidentifier(), workers=4)
    assert report.instances == 1
    [(failed, reason)] = report.failures
    # Whichever of the two the workers finished second is the failure.
    assert failed in {str(copy), str(ct_phantom[0])} and "same SOP Instance UID" in reason
    assert len(list((tmp_path / "out").iterdir())) == 1


def test_a_number_counts_as_a_leak_only_where_no_digit_touches_it() -> None:
    new_uid = b"\x00UI\x2c\x002.25.9991109361234567890123456789012345678"
    kept_uid = b"\x00UI\x14\x001.2.840.110936.5.6.7"
    assert not find_leaks(Path("out.dcm"), new_uid, {"110936"})  # chance, inside a new UID
    [leak] = find_leaks(Path("out.dcm"), new_uid + kept_uid, {"110936"})
    assert leak.offset == len(new_uid) + kept_uid.index(b"110936")
    assert find_leaks(Path("out.dcm"), b"Doe^John", {"Doe"})  # text: anywhere
