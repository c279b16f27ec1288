"""The files of pydicom's test data (its test and character set files) and of pydicom-data
installed here, found without pydicom's ``get_testdata_files``, which first tries to download
the files neither holds (11 s of network time-outs per call on a machine without internet)."""

from __future__ import annotations

from pathlib import Path

from pydicom.data.data_manager import DATA_ROOT, DataTypes, external_data_sources


def corpus_files(pattern: str = "*") -> list[Path]:
    """Every file matching ``pattern`` in pydicom's test and character set files and in
    pydicom-data, by name."""
    paths = set((Path(DATA_ROOT) / "test_files").glob(pattern))
    paths.update((Path(DATA_ROOT) / "charset_files").glob(pattern))
    for source in external_data_sources().values():
        paths.update(Path(name) for name in source.get_paths(pattern, DataTypes.DATASET))
    return sorted((path for path in paths if path.is_file()), key=lambda path: path.name)
