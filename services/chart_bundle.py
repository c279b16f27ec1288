"""The air-gapped bundle of the site chart: packaged chart, provenance, list of images.

`make chart-bundle` runs this. It lints and packages charts/openjip, signs the archive when a
PGP key is given (Helm provenance file `.prov`), and renders the chart with the operator's values
to write `images.txt`: every image those values make the cluster pull, to mirror before install;
`operator-images.txt` lists the images of the analysis operators the workflows start.

Example: python services/chart_bundle.py --out dist/chart --values site-values.yaml
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python
import yaml

REPO = Path(__file__).resolve().parents[1]
CHART_DIR = REPO / "charts" / "openjip"
CONTAINER_LISTS = ("containers", "initContainers", "ephemeralContainers")
# libyaml's loader where PyYAML was built with it: a render is thousands of lines.
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def images_in(node: Any) -> Iterator[str]:
    """Every container image below ``node``, including pods carried as text in ConfigMaps."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in CONTAINER_LISTS and isinstance(value, list):
                yield from (c["image"] for c in value if isinstance(c, dict) and "image" in c)
            yield from images_in(value)
        if node.get("kind") == "ConfigMap":
            for text in (node.get("data") or {}).values():
                if isinstance(text, str) and "kind: Pod" in text:
                    yield from images_in(yaml.load(text, Loader=YAML_LOADER))
    elif isinstance(node, list):
        for item in node:
            yield from images_in(item)


def chart_images(chart: helm_python.Chart, values: dict[str, Any]) -> list[str]:
    """Sorted distinct images of the chart rendered with ``values`` (hooks and tests included)."""
    rendered = chart.render(values, name="openjip", namespace="openjip")
    objects = [
        document
        for path, text in rendered.items()
        if not path.endswith("NOTES.txt")
        for document in yaml.load_all(text, Loader=YAML_LOADER)
        if document
    ]
    return sorted(set(images_in(objects)))


def operator_images(operators_dir: Path = REPO / "operators") -> list[str]:
    """Images of the operators shipped in the Airflow image: analysis pods pull these."""
    images = set()
    for manifest in sorted(operators_dir.glob("*/operator.yaml")):
        image = yaml.safe_load(manifest.read_text()).get("image")
        if image:
            images.add(str(image))
    return sorted(images)


def merged_values(files: list[Path]) -> dict[str, Any]:
    """Values files layered like `helm -f a.yaml -f b.yaml` (later files win)."""
    merged: dict[str, Any] = {}
    for path in files:
        layer = helm_python.values_from_yaml(path.read_text())
        merged = deep_merge(merged, layer)
    return merged


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    result = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = deep_merge(result[key], value)
        else:
            result[key] = value
    return result


def bundle(
    out: Path,
    values_files: list[Path],
    sign_key: str | None = None,
    keyring: Path | None = None,
    passphrase_file: Path | None = None,
) -> list[Path]:
    """Write the bundle into ``out``; returns the files written."""
    values = merged_values(values_files)
    report = helm_python.lint(CHART_DIR, values, strict=True)
    problems = [
        f"{m['path']}: {m['error'].strip()}" for m in report["messages"] if m["severity"] >= 2
    ]
    if problems:
        raise SystemExit("helm lint found problems:\n" + "\n".join(problems))
    out.mkdir(parents=True, exist_ok=True)
    archive = Path(helm_python.package(CHART_DIR, destination=out))
    written = [archive]
    if sign_key:
        if keyring is None:
            raise SystemExit("--keyring is required with --sign-key")
        provenance = helm_python.sign(
            archive, key=sign_key, keyring=keyring, passphrase_file=passphrase_file
        )
        written.append(Path(provenance))
    digest_file = out / f"{archive.name}.sha256"
    digest_file.write_text(f"{helm_python.digest(archive)}  {archive.name}\n")
    written.append(digest_file)
    with helm_python.Chart.load(archive) as chart:
        images = chart_images(chart, values)
    images_file = out / "images.txt"
    images_file.write_text("".join(f"{image}\n" for image in images))
    written.append(images_file)
    operators_file = out / "operator-images.txt"
    operators_file.write_text("".join(f"{image}\n" for image in operator_images()))
    written.append(operators_file)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "dist" / "chart")
    parser.add_argument(
        "--values", type=Path, action="append", default=[], help="values file (repeatable)"
    )
    parser.add_argument("--sign-key", help="PGP key (name or e-mail) that signs the chart")
    parser.add_argument("--keyring", type=Path, help="PGP secret keyring holding --sign-key")
    parser.add_argument("--passphrase-file", type=Path, help="file whose first line unlocks it")
    args = parser.parse_args(argv)
    try:
        written = bundle(args.out, args.values, args.sign_key, args.keyring, args.passphrase_file)
    except helm_python.HelmError as error:
        print(f"chart-bundle: {error}", file=sys.stderr)
        return 1
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
