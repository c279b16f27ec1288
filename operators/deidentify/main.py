"""deidentify: each input series de-identified with openjip.deid (PS3.15 Basic Profile and the
options of the ``options`` param), keyed by the site's secret, so pseudonyms and UIDs are the
ones ``openjip deidentify`` gives on this site. The step fails when a file fails, the report's
check finds an identifying value, or (unless ``allow_quarantine``) an instance is quarantined.
"""

from __future__ import annotations

import os
from pathlib import Path

from openjip import sdk
from openjip.deid.profile import ProfileError, build_profile
from openjip.deid.pseudonyms import Pseudonyms, read_secret
from openjip.deid.run import deidentify_files
from openjip.deid.walker import Deidentifier
from openjip.sdk.contract import DEID_SECRET_ENV

REPORT_FILE = "deid-report.json"


def deidentifier(options: str) -> Deidentifier:
    """The profile of the comma-separated ``options`` with the site's pseudonyms."""
    try:
        profile = build_profile(name.strip() for name in options.split(",") if name.strip())
    except ProfileError as error:
        sdk.fail(str(error))
    secret_file = os.environ.get(DEID_SECRET_ENV)
    if not secret_file:
        sdk.fail(f"{DEID_SECRET_ENV} is not set: the manifest asks for the site's deid secret")
    try:
        secret = read_secret(Path(secret_file))
    except (OSError, ValueError) as error:
        sdk.fail(f"cannot read the de-identification secret: {error}")
    return Deidentifier(profile, Pseudonyms(secret))


def main() -> None:
    """De-identify every input series; its report beside its instances."""
    params = sdk.params()
    chosen = deidentifier(str(params["options"]))
    inputs = sdk.inputs()
    problems = []
    for position, item in enumerate(inputs):
        sdk.progress(position / len(inputs), f"de-identifying {item.name}")
        out = item.output_dir()
        report = deidentify_files(item.files(), out, chosen)
        report.write(out / REPORT_FILE)
        sdk.log.info(
            "%s: %d instances, %d quarantined, %d failed, check %s",
            item.name,
            report.instances,
            len(report.quarantined),
            len(report.failures),
            "passed" if report.check_passed else "FAILED",
        )
        if report.failed(bool(params["allow_quarantine"])):
            problems.append(
                f"{item.name}: {len(report.failures)} failed, {len(report.quarantined)} "
                f"quarantined, {len(report.leaks)} identifying values left"
            )
    if problems:
        sdk.fail("de-identification failed (see deid-report.json): " + "; ".join(problems))
    sdk.progress(1.0, f"de-identified {len(inputs)} series")


if __name__ == "__main__":
    sdk.run(main)
