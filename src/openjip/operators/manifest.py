"""The operator manifest (``operator.yaml``): its model, parsing, and errors that name their path.

The JSON schema published as ``operator.schema.json`` is generated from :class:`OperatorManifest`
(``python -m openjip.operators.schema``); a test keeps the two equal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

MANIFEST_FILE = "operator.yaml"

InputKind = Literal["dicom-series", "nifti", "step-output"]
OutputKind = Literal["dicom-seg", "dicom", "nifti", "json", "csv"]
ParamType = Literal["string", "integer", "number", "boolean"]
ParamValue = bool | int | float | str
SiteSecret = Literal["deid"]
"""A site secret a step may be given: ``deid``, the de-identification secret (pseudonyms)."""

# repository[:tag][@sha256:digest] as Docker and OCI spell it; a registry host may carry a port.
_IMAGE_RE = re.compile(
    r"^(?P<repository>[a-z0-9]+(?:[._-][a-z0-9]+)*(?::[0-9]+)?"
    r"(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?"
    r"(?:@(?P<digest>sha256:[a-f0-9]{64}))?$"
)
_NAME_PATTERN = r"^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$"
_VERSION_PATTERN = r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?$"
_PARAM_NAME_PATTERN = r"^[a-z_][a-z0-9_]*$"
# Kubernetes resource quantities: CPU in cores or millicores, memory in bytes with a suffix.
_CPU_RE = re.compile(r"^([0-9]+(\.[0-9]+)?|[0-9]+m)$")
_MEMORY_RE = re.compile(r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|k|M|G|T)?$")

_PYTHON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
}


def value_has_type(value: object, param_type: str) -> bool:
    """Whether ``value`` is of the JSON type ``param_type`` (a bool is not a number)."""
    if isinstance(value, bool) and param_type != "boolean":
        return False
    return isinstance(value, _PYTHON_TYPES[param_type])


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ParamSpec(_Strict):
    """One parameter of an operator; a JSON-schema subset that Airflow Params can render."""

    type: ParamType = Field(description="JSON type of the value.")
    title: str | None = Field(None, description="Short label shown in forms.")
    description: str | None = Field(None, description="What the parameter does.")
    default: ParamValue | None = Field(
        None, description="Value used when none is given; without a default the param is required."
    )
    enum: list[ParamValue] | None = Field(
        None, min_length=1, description="The only values allowed."
    )
    minimum: float | None = Field(None, description="Smallest value (integer and number only).")
    maximum: float | None = Field(None, description="Largest value (integer and number only).")

    @model_validator(mode="after")
    def _consistent(self) -> ParamSpec:
        numeric = self.type in ("integer", "number")
        if not numeric and (self.minimum is not None or self.maximum is not None):
            raise ValueError(f"minimum/maximum only apply to integer and number, not {self.type}")
        if self.minimum is not None and self.maximum is not None and self.minimum > self.maximum:
            raise ValueError(f"minimum {self.minimum} is greater than maximum {self.maximum}")
        for value in self.enum or []:
            if not value_has_type(value, self.type):
                raise ValueError(f"enum value {value!r} is not of type {self.type}")
        if self.default is not None:
            problem = self.check(self.default)
            if problem:
                raise ValueError(f"default {problem}")
        return self

    @property
    def required(self) -> bool:
        """A param without a default must be given."""
        return self.default is None

    def check(self, value: object) -> str | None:
        """Why ``value`` is not acceptable for this param, or None when it is."""
        if not value_has_type(value, self.type):
            return f"{value!r} is not of type {self.type}"
        if self.enum is not None and value not in self.enum:
            return f"{value!r} is not one of {self.enum}"
        if self.minimum is not None and value < self.minimum:  # type: ignore[operator]
            return f"{value!r} is below the minimum {self.minimum:g}"
        if self.maximum is not None and value > self.maximum:  # type: ignore[operator]
            return f"{value!r} is above the maximum {self.maximum:g}"
        return None

    def json_schema(self) -> dict[str, Any]:
        """This param as a JSON schema (what Airflow's ``Param`` takes as keyword arguments)."""
        schema: dict[str, Any] = {"type": self.type}
        for key in ("title", "description", "default", "enum", "minimum", "maximum"):
            value = getattr(self, key)
            if value is not None:
                schema[key] = value
        return schema


class InputSpec(_Strict):
    """What the operator reads from ``OPENJIP_STEP_INPUT``."""

    kind: InputKind = Field(
        description="`dicom-series`: DICOM files of one series per folder; `nifti`: NIfTI "
        "volumes; `step-output`: the output folder of a previous step."
    )
    description: str | None = Field(None, description="What the input must contain.")


class OutputSpec(_Strict):
    """What the operator writes to ``OPENJIP_STEP_OUTPUT``."""

    kind: OutputKind = Field(
        description="`dicom-seg` and `dicom` are stored and indexed like received series; "
        "`nifti`, `json`, `csv` are stored as run outputs."
    )
    description: str | None = Field(None, description="What the output contains.")


class Resources(_Strict):
    """What one run of the operator needs (Kubernetes requests; local mode ignores them)."""

    cpu: str = Field("1", description='CPU cores as a Kubernetes quantity: "2", "0.5", "500m".')
    memory: str = Field("1Gi", description='Memory as a Kubernetes quantity: "512Mi", "4Gi".')
    gpu: int = Field(0, ge=0, description="Number of GPUs (nvidia.com/gpu).")

    @field_validator("cpu", mode="before")
    @classmethod
    def _cpu_text(cls, value: object) -> object:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return f"{value:g}"
        return value

    @field_validator("cpu")
    @classmethod
    def _cpu_quantity(cls, value: str) -> str:
        if not _CPU_RE.match(value):
            raise ValueError(f"{value!r} is not a CPU quantity such as 2, 0.5 or 500m")
        return value

    @field_validator("memory")
    @classmethod
    def _memory_quantity(cls, value: str) -> str:
        if not _MEMORY_RE.match(value):
            raise ValueError(f"{value!r} is not a memory quantity such as 512Mi or 4Gi")
        return value


class OperatorManifest(_Strict):
    """An operator: container image + entrypoint + what it reads, writes and accepts."""

    name: Annotated[str, Field(pattern=_NAME_PATTERN)] = Field(
        description="Lower-case name with dashes (a DNS label), unique at a site."
    )
    version: Annotated[str, Field(pattern=_VERSION_PATTERN)] = Field(
        description="Semantic version MAJOR.MINOR.PATCH; workflows refer to name@version."
    )
    description: str = Field(min_length=1, description="What the operator does, in one sentence.")
    image: str = Field(
        description="Container image: repository:tag, optionally @sha256:digest (required to "
        "publish a workflow using it to other sites)."
    )
    command: list[Annotated[str, Field(min_length=1)]] = Field(
        min_length=1,
        description="Entrypoint, run in the image's working directory; in local mode run with "
        "the operator folder as working directory and openjip's Python first on PATH.",
    )
    input: InputSpec = Field(description="What the operator reads.")
    output: OutputSpec = Field(description="What the operator writes.")
    params: dict[Annotated[str, Field(pattern=_PARAM_NAME_PATTERN)], ParamSpec] = Field(
        default_factory=dict, description="Parameters by name."
    )
    resources: Resources = Field(default_factory=Resources, description="Compute it needs.")
    secrets: list[SiteSecret] = Field(
        default_factory=list,
        description="Site secrets the step is given as files (`deid`: the de-identification "
        "secret, its path in OPENJIP_DEID_SECRET_FILE); only a site's own operators run, so "
        "only they can ask.",
    )

    @field_validator("image")
    @classmethod
    def _image_reference(cls, value: str) -> str:
        match = _IMAGE_RE.match(value)
        if not match:
            raise ValueError(
                f"{value!r} is not an image reference like registry/name:tag[@sha256:…]"
            )
        if not match["tag"] and not match["digest"]:
            raise ValueError(f"{value!r} needs a tag or a digest (no implicit :latest)")
        return value

    @property
    def ref(self) -> str:
        """``name@version``, how workflows refer to this operator."""
        return f"{self.name}@{self.version}"

    @property
    def image_digest(self) -> str | None:
        """The ``sha256:…`` digest the image is pinned to, if any."""
        match = _IMAGE_RE.match(self.image)
        return match["digest"] if match else None

    def params_json_schema(self) -> dict[str, Any]:
        """The params as one JSON schema object (for forms and for validating a step's params)."""
        return {
            "type": "object",
            "properties": {name: spec.json_schema() for name, spec in self.params.items()},
            "required": sorted(name for name, spec in self.params.items() if spec.required),
            "additionalProperties": False,
        }


@dataclass(frozen=True)
class ManifestIssue:
    """One problem in a manifest: where (dotted path in the document) and what."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ManifestError(ValueError):
    """A manifest that cannot be used, with every problem found."""

    def __init__(self, source: str, issues: list[ManifestIssue]) -> None:
        self.source = source
        self.issues = issues
        lines = "\n".join(f"  {issue}" for issue in issues)
        super().__init__(f"{source}: invalid operator manifest\n{lines}")


def document_path(location: tuple[int | str, ...]) -> str:
    """``("command", 0)`` → ``command[0]``: the path of a value in the YAML document."""
    path = ""
    for part in location:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def _issue_from_pydantic(error: Any) -> ManifestIssue:
    path = document_path(error["loc"])
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown field"
    elif error["type"] == "missing":
        message = "required field is missing"
    elif error["type"] == "string_pattern_mismatch":
        message = f"{error['input']!r} does not match {error['ctx']['pattern']}"
    elif error["type"] == "literal_error":
        message = f"{error['input']!r} is not one of {error['ctx']['expected']}"
    return ManifestIssue(path, message)


def parse_manifest(data: object, source: str = MANIFEST_FILE) -> OperatorManifest:
    """Validate already-parsed YAML/JSON data; raises :class:`ManifestError` listing every issue."""
    if not isinstance(data, dict):
        kind = "empty" if data is None else type(data).__name__
        raise ManifestError(source, [ManifestIssue("", f"must be a mapping, got {kind}")])
    try:
        return OperatorManifest.model_validate(data)
    except ValidationError as exc:
        raise ManifestError(source, [_issue_from_pydantic(e) for e in exc.errors()]) from None


def read_manifest(path: Path) -> OperatorManifest:
    """Read and validate an ``operator.yaml`` file; raises :class:`ManifestError`."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ManifestError(
            str(path), [ManifestIssue("", f"cannot read: {exc.strerror}")]
        ) from None
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        issue = ManifestIssue(where, f"not valid YAML: {exc.problem}")
        raise ManifestError(str(path), [issue]) from None
    except yaml.YAMLError as exc:
        raise ManifestError(str(path), [ManifestIssue("", f"not valid YAML: {exc}")]) from None
    return parse_manifest(data, str(path))
