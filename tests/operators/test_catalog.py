"""Finding operators by name@version on the search path."""

from __future__ import annotations

from pathlib import Path

import pytest

from openjip.operators import OperatorNotFound, find_operator, scan_operators
from openjip.operators.catalog import REPO_OPERATORS_DIR
from openjip.operators.scaffold import new_operator


def versioned(root: Path, name: str, version: str) -> Path:
    """A scaffolded operator of ``version`` in ``root/<name>-<version>/``."""
    folder = new_operator(name, root)
    manifest = folder / "operator.yaml"
    manifest.write_text(manifest.read_text().replace("version: 0.1.0", f"version: {version}"))
    return folder.rename(root / f"{name}-{version}")


@pytest.fixture
def search_path(tmp_path: Path) -> list[Path]:
    """Two folders: 1.2.0 in the second, every other version in the first."""
    first, second = tmp_path / "repo", tmp_path / "site"
    for version in ("1.0.0", "1.10.0", "1.2.0", "2.0.0-rc1"):
        versioned(second if version == "1.2.0" else first, "lung-volume", version)
    return [first, second]


def test_highest_version_wins_and_prereleases_sort_first(search_path: list[Path]) -> None:
    assert find_operator("lung-volume", search_path=search_path).manifest.version == "2.0.0-rc1"
    assert (
        find_operator("lung-volume@1.2.0", search_path=search_path).directory.parent
        == search_path[1]
    )
    assert (
        find_operator("lung-volume", "1.10.0", search_path=search_path).manifest.version == "1.10.0"
    )
    versions = [op.manifest.version for op in scan_operators(search_path).operators]
    assert versions == ["1.0.0", "1.2.0", "1.10.0", "2.0.0-rc1"]


def test_unknown_operator_or_version(search_path: list[Path]) -> None:
    with pytest.raises(OperatorNotFound, match=r"lung-volume@9\.9\.9 not found"):
        find_operator("lung-volume", "9.9.9", search_path=search_path)
    with pytest.raises(OperatorNotFound, match="nothing not found"):
        find_operator("nothing", search_path=search_path)


def test_first_folder_on_the_path_shadows_later_copies(tmp_path: Path) -> None:
    early, late = tmp_path / "early", tmp_path / "late"
    new_operator("same", early)
    new_operator("same", late)
    found = scan_operators([early, late]).operators
    assert [op.directory.parent for op in found] == [early]


def test_default_path_holds_the_repository_and_site_operators(openjip_home: Path) -> None:
    new_operator("mine", openjip_home / "operators")
    assert find_operator("mine").directory == openjip_home / "operators" / "mine"
    assert find_operator("dicom-to-nifti@0.1.0").directory == REPO_OPERATORS_DIR / "dicom-to-nifti"
