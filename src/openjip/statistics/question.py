"""A statistics question and its answer, as they travel between sites (pydantic models).

A question counts series (never patients' rows) that match filters on an allow-list of
non-identifying fields, grouped by up to two of them, optionally binned by a numeric field.
Nothing in a question can name a patient, a study or a series: free-text and identifier fields
are not on the lists, and values are short plain strings without wildcards.
"""

from __future__ import annotations

import itertools
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

QUESTION_FORMAT: Literal["openjip-question/1"] = "openjip-question/1"
ANSWER_FORMAT: Literal["openjip-answer/1"] = "openjip-answer/1"
DEFAULT_MIN_CELL = 5

GroupField = Literal["Modality", "BodyPartExamined", "Manufacturer", "StudyYear"]
"""Fields a question may group by (``StudyYear``: the first four digits of StudyDate)."""
BinField = Literal["SliceThickness", "NumberOfSeriesRelatedInstances"]
"""Numeric fields a question may bin (``SliceThickness`` read from the series' header)."""
PlainValue = Annotated[str, Field(pattern=r"^[A-Za-z0-9 ._^-]{1,64}$")]
"""A code string or manufacturer name: no wildcards, no separators, short."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NumberRange(_Strict):
    """Inclusive bounds; either may be open."""

    min: float | None = None
    max: float | None = None


class Filters(_Strict):
    """What a counted series must match; every field left out matches everything."""

    Modality: PlainValue | None = None
    BodyPartExamined: PlainValue | None = None
    Manufacturer: PlainValue | None = None
    StudyDate: str | None = Field(
        None,
        pattern=r"^(\d{8})?-?(\d{8})?$",
        description="YYYYMMDD, YYYYMMDD-, -YYYYMMDD or YYYYMMDD-YYYYMMDD.",
    )
    SliceThickness: NumberRange | None = None
    """In mm, from the header of the series' first instance (the index has no such field)."""


class Histogram(_Strict):
    """Bins ``[edges[i], edges[i+1])`` of a numeric field; values outside fall in no bin."""

    field: BinField
    edges: list[float] = Field(min_length=2, max_length=50)

    @model_validator(mode="after")
    def _increasing(self) -> Histogram:
        if any(high <= low for low, high in itertools.pairwise(self.edges)):
            raise ValueError("histogram edges must increase")
        return self


class Question(_Strict):
    """Counts of series matching ``filters``, by ``group_by`` (and ``histogram`` bins)."""

    format: Literal["openjip-question/1"] = QUESTION_FORMAT
    filters: Filters = Filters()
    group_by: list[GroupField] = Field(default_factory=list, max_length=2)
    histogram: Histogram | None = None
    min_cell: int = Field(
        DEFAULT_MIN_CELL,
        ge=1,
        description="Smallest count the asker wants shown; a site uses the larger of this and "
        "its own minimum, so an asker can raise it but never lower it.",
    )


class Cell(_Strict):
    """One shown count: the group values (and bin) it belongs to."""

    group: dict[str, str]
    count: int


class Answer(_Strict):
    """A site's counts for one question, cells below ``min_cell`` withheld (not listed)."""

    format: Literal["openjip-answer/1"] = ANSWER_FORMAT
    min_cell: int
    cells: list[Cell]
    withheld_cells: int
    """How many cells had a count below ``min_cell``; their labels and counts are not given."""
