"""The deid section of the settings: the de-identification secret and the policy per project."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field


class DeidPolicy(BaseModel):
    """How one project's data are de-identified (options named as ``openjip deidentify``'s)."""

    on_ingest: bool = Field(
        False,
        description="Store only de-identified data: what is stored into the project (C-STORE, "
        "STOW) is de-identified before anything is written; the originals never reach storage, "
        "an instance with suspected burned-in text is refused.",
    )
    on_export: bool = Field(
        False,
        description="What leaves the project (C-MOVE, C-GET) is de-identified on the way out.",
    )
    options: list[str] = Field(
        default_factory=list,
        description="Profile options, e.g. retain-longitudinal-modified-dates.",
    )
    reidentification: bool = Field(
        False,
        description="Keep a re-identification table of the project's patients (pseudonym → "
        "Patient ID and name), sealed under the site secret, 0600, opened by `openjip "
        "reidentify` (audited); off: none exists.",
    )


class PixelRule(BaseModel):
    """A pixel-cleaning rule, as CTP's DicomPixelAnonymizer has them: in an instance whose
    attributes have every value of ``match``, the ``regions`` are blacked out (set to 0)."""

    match: dict[str, str | int] = Field(
        min_length=1,
        description='Attribute keywords and the values they must have, e.g. {"Manufacturer": '
        '"G.E. Medical Systems", "ManufacturerModelName": "LOGIQ 700", "Rows": 480}.',
    )
    regions: list[tuple[int, int, int, int]] = Field(
        min_length=1,
        description="Rectangles [left, top, width, height] in pixels, blacked out in every frame.",
    )


class DeidSettings(BaseModel):
    """De-identification: the site secret of pseudonyms and the policies of projects."""

    secret_file: Path | None = Field(
        None,
        description="File of the site's de-identification secret (pseudonyms, UIDs, date "
        "shifts); default `$OPENJIP_HOME/deid.secret`, created 0600 on first use.",
    )
    secret_name: str = Field(
        "openjip-deid",
        description="Kubernetes Secret (key `deid.secret`) mounted into analysis steps whose "
        "operator asks for the `deid` secret.",
    )
    pixel_rules: list[PixelRule] = Field(
        default_factory=list,
        description="Pixel-cleaning rules, JSON list of {match, regions}: an instance with "
        "suspected burned-in text that one covers is cleaned and written instead of quarantined.",
    )
    projects: dict[str, DeidPolicy] = Field(
        default_factory=dict,
        description='Policies per project, JSON: {"research": {"on_ingest": true, "on_export": '
        'true, "options": ["retain-longitudinal-modified-dates"]}}.',
    )
