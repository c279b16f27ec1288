"""The workflow spec: a YAML document describing one workflow as data.

The pydantic models here are the single source of the structure; the published JSON schema
(``workflow.schema.json``) is generated from them (``python -m openjip.workflows.schema``) and
a test keeps the two equal. Checks that need more than one field at a time (cycles, references
between steps and params, operators that exist) live in :mod:`openjip.workflows.validation`.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SPEC_ID_PATTERN = r"^[a-z][a-z0-9-]{1,62}$"
"""Workflow ids become Airflow DAG ids and object-key parts: lower case, digits, dashes."""
STEP_NAME_PATTERN = r"^[a-z][a-z0-9_-]{0,62}$"
PARAM_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"
OPERATOR_REF_PATTERN = r"^[a-z][a-z0-9-]*@[0-9A-Za-z.+-]+$"
PARAM_REFERENCE = re.compile(r"^\{\{\s*params\.([a-z][a-z0-9_]*)\s*\}\}$")
"""A step param value that is exactly ``{{ params.NAME }}`` takes the workflow param NAME."""

SERIES_PARAM = "series"
"""The DAG param (and run-conf key) holding the SeriesInstanceUIDs a run works on."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


ParamValue = str | int | float | bool | list[str]


class ParamSpec(_Strict):
    """One workflow param: a field of the Airflow trigger form."""

    type: Literal["string", "integer", "number", "boolean", "array"] = Field(
        description="JSON type of the value; `array` holds strings."
    )
    title: str = Field("", description="Label of the field in the trigger form.")
    description: str = Field("", description="Help text under the field in the trigger form.")
    default: ParamValue | None = Field(
        None, description="Value used when the form leaves the field alone."
    )
    enum: list[str | int | float] | None = Field(
        None, description="The only values allowed (a drop-down in the form)."
    )
    minimum: float | None = Field(None, description="Smallest value of a number or integer.")
    maximum: float | None = Field(None, description="Largest value of a number or integer.")


class InputSpec(_Strict):
    """Which series a run works on when its conf names none."""

    kind: Literal["series", "query", "cohort"] = Field(
        "series",
        description=(
            "`series`: the series picked in the form (param `series`: SeriesInstanceUIDs, "
            "StudyInstanceUIDs, accession numbers or patient IDs); "
            "`query`: the series the index finds with `query` (the form may still name series); "
            "`cohort`: the series of the saved cohort `cohort` (the form may still name series)."
        ),
    )
    cohort: str = Field(
        "",
        description="Name of the saved cohort (Images page) a `kind: cohort` workflow runs on.",
    )
    query: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "Index query for `kind: query`: fields of the index Query (Modality, PatientID, "
            "PatientName, StudyDate, AccessionNumber, BodyPartExamined; `text`: words of the "
            "study/series descriptions); a value may be `{{ params.NAME }}` (empty: any)."
        ),
    )
    limit: int | None = Field(None, ge=1, description="At most this many series from the query.")


class ResourcesSpec(_Strict):
    """What one step needs to run (pod requests and limits in kubernetes mode)."""

    cpu: str = Field(
        "1", pattern=r"^[0-9]+(\.[0-9]+)?m?$", description="CPU cores, e.g. `1`, `500m`."
    )
    memory: str = Field(
        "1Gi", pattern=r"^[0-9]+(Ki|Mi|Gi|Ti|K|M|G|T)?$", description="Memory, e.g. `2Gi`."
    )
    gpu: int = Field(0, ge=0, description="NVIDIA GPUs.")


class StepSpec(_Strict):
    """One analysis step: an operator run once per series."""

    name: str = Field(pattern=STEP_NAME_PATTERN, description="Step name, unique in the workflow.")
    operator: str = Field(
        pattern=OPERATOR_REF_PATTERN, description="Operator as `name@version`, e.g. `x@1.0.0`."
    )
    description: str = Field("", description="What the step does.")
    per_series: bool = Field(
        True, description="Run once per series (fan-out); otherwise once with every series."
    )
    depends_on: list[str] = Field(
        default_factory=list, description="Steps that must finish before this one starts."
    )
    input_from: str | None = Field(
        None,
        description="Read the outputs of this earlier step instead of the DICOM series.",
    )
    params: dict[str, ParamValue] = Field(
        default_factory=dict,
        description="Params passed to the operator; a value may be `{{ params.NAME }}`.",
    )
    resources: ResourcesSpec | None = Field(
        None, description="Overrides the operator's own resources."
    )
    retries: int = Field(0, ge=0, le=10, description="Airflow retries of the step's task.")


class MatchRule(_Strict):
    """Series fields a completed series must match; each value is a regular expression that
    must match the whole field, ignoring case."""

    Modality: str | None = Field(None, description="e.g. `CT` or `CT|MR`.")
    BodyPartExamined: str | None = Field(None, description="e.g. `CHEST|ABDOMEN`.")
    SeriesDescription: str | None = Field(None, description="e.g. `.*(body|abdomen).*`.")
    StudyDescription: str | None = Field(None, description="Regular expression.")
    Manufacturer: str | None = Field(None, description="Regular expression.")
    PatientID: str | None = Field(None, description="Regular expression.")
    AccessionNumber: str | None = Field(None, description="Regular expression.")
    source_ae: str | None = Field(None, description="Calling AE title the series came from.")
    min_instances: int = Field(1, ge=1, description="At least this many instances.")


class SeriesCompleteTrigger(_Strict):
    """Start a run for each completed series that matches."""

    match: MatchRule = Field(description="Rule on the series' index fields.")
    params: dict[str, ParamValue] = Field(
        default_factory=dict, description="Values of workflow params for runs started this way."
    )


class TriggersSpec(_Strict):
    """How runs start."""

    manual: bool = Field(True, description="Runs may be started from the UI, CLI or API.")
    on_series_complete: list[SeriesCompleteTrigger] = Field(
        default_factory=list, description="Start a run when a received series is complete."
    )


class SpecOrigin(_Strict):
    """Where a federated spec came from; written by ``openjip federation approve``."""

    peer: str = Field(description="Local name of the peer site that published it.")
    site_id: str = Field(description="Site id (key fingerprint) of the publisher.")
    sequence: int = Field(ge=1, description="Publication number at the publisher.")
    bundle_id: str = Field(description="Id of the signed bundle it arrived in.")
    signature: str = Field(description="The publisher's Ed25519 signature of the bundle.")
    approved_at: int = Field(description="When this site approved it (UNIX seconds).")


class PrivacySpec(_Strict):
    """Local differential privacy the spec asks of every training site (Flower's ``LocalDpMod``:
    each update is clipped to ``dp_clipping_norm`` and Gaussian noise for (ε, δ) is added before
    it leaves). A site whose own settings demand more refuses the run; none can be weakened."""

    dp_clipping_norm: float | None = Field(
        None, gt=0, description="L2 norm each model update is clipped to; none: no clipping."
    )
    dp_epsilon: float | None = Field(
        None, gt=0, description="Privacy budget ε per update (smaller is more private)."
    )
    dp_delta: float | None = Field(
        None, gt=0, lt=1, description="Failure probability δ of the Gaussian mechanism."
    )


class FederatedSpec(_Strict):
    """Federated learning: the coordinator's run aggregates (Flower strategy), each
    participating site's run trains on the series it selected; only model parameters and
    aggregate metrics travel."""

    coordinator: str = Field(
        pattern=r"^[0-9a-f]{16,64}$",
        description="Site id (key fingerprint) of the site whose run aggregates the rounds.",
    )
    features_from: str = Field(
        pattern=STEP_NAME_PATTERN,
        description="Step whose per-series `features.json` (features and label) is the "
        "training data.",
    )
    features: list[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")]] = Field(
        min_length=1,
        description="Names of the features (keys of `features` in each `features.json`) the "
        "model uses, in order; the file's `label` (0 or 1) is what it learns.",
    )
    model: Literal["logistic-regression"] = Field(
        "logistic-regression", description="The model trained (numpy, no downloaded weights)."
    )
    strategy: Literal["FedAvg", "FedMedian", "FedTrimmedAvg"] = Field(
        "FedAvg", description="Flower strategy aggregating the sites' updates."
    )
    rounds: int = Field(5, ge=1, le=200, description="Federated rounds.")
    sites: int = Field(
        3,
        ge=1,
        description="Sites asked to take part (the coordinator included when it trains too); "
        "joining ends when all have joined or declined, or at `join_timeout_seconds`.",
    )
    min_sites: int = Field(
        2, ge=1, description="Sites that must join and reply in every round (else it fails)."
    )
    min_cohort: int = Field(
        5, ge=1, description="Series a site must train on; a site's own minimum may be higher."
    )
    local_epochs: int = Field(20, ge=1, le=1000, description="Passes over local data per round.")
    learning_rate: float = Field(0.5, gt=0, le=10, description="Step size of local training.")
    round_timeout_seconds: int = Field(
        300, ge=1, description="How long a round waits for replies before going on without."
    )
    join_timeout_seconds: int = Field(
        600, ge=1, description="How long the coordinator waits for sites to join."
    )
    privacy: PrivacySpec = Field(
        default_factory=PrivacySpec, description="Local differential privacy of each update."
    )


class WorkflowSpec(_Strict):
    """A workflow: params (the trigger form), input, steps and triggers."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": "https://openjip.org/schemas/workflow.schema.json",
        },
    )

    id: str = Field(pattern=SPEC_ID_PATTERN, description="Workflow id; the Airflow DAG id.")
    version: str = Field(
        pattern=r"^[0-9]+\.[0-9]+\.[0-9]+([.+-][0-9A-Za-z.+-]*)?$",
        description="Version of the spec (semantic versioning).",
    )
    title: str = Field(min_length=1, description="Short name shown in the UI.")
    description: str = Field("", description="What the workflow does, for the person running it.")
    tags: list[str] = Field(default_factory=list, description="Airflow tags.")
    params: dict[Annotated[str, Field(pattern=PARAM_NAME_PATTERN)], ParamSpec] = Field(
        default_factory=dict, description="Params by name: the trigger form."
    )
    input: InputSpec = Field(default_factory=InputSpec, description="Which series a run uses.")
    steps: list[StepSpec] = Field(min_length=1, description="The steps, in any order.")
    triggers: TriggersSpec = Field(default_factory=TriggersSpec, description="How runs start.")
    federated: FederatedSpec | None = Field(
        None, description="Makes this a federated-learning workflow (see docs/federated-learning)."
    )
    origin: SpecOrigin | None = Field(
        None, description="Set on specs accepted from a federation peer; absent on local ones."
    )

    def step(self, name: str) -> StepSpec:
        """The step called ``name``."""
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(name)


def resolve_param_value(value: ParamValue, params: dict[str, Any]) -> Any:
    """``value`` with a ``{{ params.NAME }}`` reference replaced by the run's param value."""
    if isinstance(value, str) and (match := PARAM_REFERENCE.match(value)):
        return params.get(match.group(1))
    return value


def split_operator_ref(ref: str) -> tuple[str, str]:
    """``"name@version"`` → ``("name", "version")``."""
    name, _, version = ref.partition("@")
    return name, version
