"""`make chart-bundle`: packaged chart, signed provenance, and the images the values make pulled."""

from __future__ import annotations

import importlib.util
import os
import subprocess
from pathlib import Path
from types import ModuleType

import helm_python
import pytest
import yaml
from chart_objects import CHART_DIR, REPO, VALUE_SETS

ARCHIVE = f"openjip-{yaml.safe_load((CHART_DIR / 'Chart.yaml').read_text())['version']}.tgz"


def load_bundle_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("chart_bundle", REPO / "services/chart_bundle.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


chart_bundle = load_bundle_module()


@pytest.fixture(scope="module")
def keyrings(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A throw-away PGP key (GnuPG), exported as secret and public keyrings."""
    home = tmp_path_factory.mktemp("gnupg")
    env = {**os.environ, "GNUPGHOME": str(home)}
    uid = "openjip bundle test <bundle@openjip.invalid>"
    gpg = ["gpg", "--batch", "--passphrase", ""]
    subprocess.run([*gpg, "--quick-gen-key", uid, "rsa2048", "sign", "never"], env=env, check=True)
    secret, public = home / "secring.gpg", home / "pubring.gpg"
    secret.write_bytes(
        subprocess.run(
            [*gpg, "--export-secret-keys"], env=env, check=True, capture_output=True
        ).stdout
    )
    public.write_bytes(
        subprocess.run([*gpg, "--export"], env=env, check=True, capture_output=True).stdout
    )
    return secret, public


def test_bundle_writes_a_signed_chart_and_the_image_list(
    tmp_path: Path, keyrings: tuple[Path, Path]
) -> None:
    secret, public = keyrings
    values = tmp_path / "site.yaml"
    values.write_text(yaml.safe_dump(VALUE_SETS["air-gapped-mirror"]))
    out = tmp_path / "bundle"
    code = chart_bundle.main(
        [
            "--out",
            str(out),
            "--values",
            str(values),
            "--sign-key",
            "bundle@openjip.invalid",
            "--keyring",
            str(secret),
        ]
    )
    assert code == 0
    archive = out / ARCHIVE
    verified = helm_python.verify(archive, public)
    assert verified["signed_by"] == ["openjip bundle test <bundle@openjip.invalid>"]
    assert (out / f"{ARCHIVE}.sha256").read_text().split()[0] == helm_python.digest(archive)
    images = (out / "images.txt").read_text().split()
    assert images == sorted(set(images))
    assert all(image.startswith("registry.hospital.local:5000/") for image in images)
    assert "registry.hospital.local:5000/openjip/airflow:0.3.0@sha256:" + "b" * 64 in images
    assert len(images) == 5
    operators = (out / "operator-images.txt").read_text().split()
    assert operators == chart_bundle.operator_images()


def test_packaged_chart_holds_only_the_chart(tmp_path: Path) -> None:
    chart_bundle.bundle(tmp_path, [])
    with helm_python.Chart.load(tmp_path / ARCHIVE) as chart:
        names = {f["name"] for f in chart.files} | {t["name"] for t in chart.templates}
        assert chart.schema is not None
    assert not any("__pycache__" in name or name.endswith(".pyc") for name in names)
    assert "files/dicom_echo.py" in names


def test_image_list_follows_the_values() -> None:
    with helm_python.Chart.load(chart_bundle.CHART_DIR) as chart:
        minimal = chart_bundle.chart_images(chart, VALUE_SETS["minimal"])
        external = chart_bundle.chart_images(chart, VALUE_SETS["external-services"])
        executor = chart_bundle.chart_images(chart, VALUE_SETS["kubernetes-executor"])
    assert not any("airflow" in image or "postgres" in image for image in minimal)
    assert not any("minio" in image or "opensearch" in image for image in external)
    assert "ghcr.io/openjip/airflow:0.3.0" in executor


def test_wrong_values_stop_the_bundle(tmp_path: Path) -> None:
    bad = REPO / "tests/chart/bad_values/02-latest-tag.yaml"
    with pytest.raises(SystemExit, match="images/openjip/tag"):
        chart_bundle.bundle(tmp_path / "out", [bad])
