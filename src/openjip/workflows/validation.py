"""Checking a workflow document and naming every error by its path in the document.

``validate_spec(data)`` returns all errors at once — structural ones from the spec model and
the checks across fields (step references, cycles, param references and defaults, regular
expressions, operators that exist) — so ``openjip workflow validate`` can list them together.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from openjip.operators.manifest import document_path
from openjip.records import Query
from openjip.workflows.spec import (
    PARAM_REFERENCE,
    SERIES_PARAM,
    ParamSpec,
    WorkflowSpec,
    split_operator_ref,
)

if TYPE_CHECKING:
    from openjip.operators import OperatorManifest

QUERY_FIELDS = tuple(
    name for name, kind in Query.__annotations__.items() if kind == "str" and name != "order"
)
"""Index query fields an ``input.query`` may set (``text``: words of the descriptions)."""

OperatorLookup = Callable[[str, str], "OperatorManifest"]
"""``lookup(name, version)`` → the operator's manifest; ``LookupError`` saying why when unusable."""


@dataclass(frozen=True)
class SpecError:
    """One problem of a spec: where (``steps[1].depends_on[0]``) and what."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path or '<document>'}: {self.message}"


class SpecInvalid(ValueError):
    """A workflow spec that cannot be used; ``errors`` lists every problem."""

    def __init__(self, source: str, errors: list[SpecError]) -> None:
        self.source = source
        self.errors = errors
        lines = "\n".join(f"  {error}" for error in errors)
        super().__init__(f"invalid workflow spec {source}:\n{lines}")


def validate_spec(data: Any, *, operator_lookup: OperatorLookup | None = None) -> list[SpecError]:
    """Every error of the workflow document ``data`` (parsed YAML); empty when it is valid.

    ``operator_lookup`` finds a referenced operator; the default looks in the operator folders
    of this site.
    """
    if not isinstance(data, dict):
        return [SpecError("", f"a workflow spec is a mapping, not {type(data).__name__}")]
    try:
        spec = WorkflowSpec.model_validate(data)
    except ValidationError as error:
        return [
            SpecError(document_path(detail["loc"]), detail["msg"])
            for detail in error.errors(include_url=False)
        ]
    return _check_spec(spec, operator_lookup or installed_operator)


def parse_spec(
    data: Any, *, source: str, operator_lookup: OperatorLookup | None = None
) -> WorkflowSpec:
    """The spec in ``data``; :class:`SpecInvalid` listing every error when it is not valid."""
    errors = validate_spec(data, operator_lookup=operator_lookup)
    if errors:
        raise SpecInvalid(source, errors)
    return WorkflowSpec.model_validate(data)


def installed_operator(name: str, version: str) -> OperatorManifest:
    """The manifest of ``name@version`` among the operators of this site."""
    from openjip.operators import find_operator

    return find_operator(name, version).manifest


def _check_spec(spec: WorkflowSpec, operator_lookup: OperatorLookup) -> list[SpecError]:
    errors: list[SpecError] = []
    for name, param in spec.params.items():
        errors += _check_param(f"params.{name}", name, param)
    errors += _check_steps(spec, operator_lookup)
    errors += _check_references(spec)
    for index, trigger in enumerate(spec.triggers.on_series_complete):
        path = f"triggers.on_series_complete[{index}]"
        for field, pattern in trigger.match.model_dump(exclude_none=True).items():
            if isinstance(pattern, str):
                try:
                    re.compile(pattern)
                except re.error as error:
                    errors.append(SpecError(f"{path}.match.{field}", f"bad regex: {error}"))
        for name, value in trigger.params.items():
            if name not in spec.params:
                errors.append(SpecError(f"{path}.params.{name}", f"unknown param {name!r}"))
            elif (problem := param_value_problem(spec.params[name], value)) is not None:
                errors.append(SpecError(f"{path}.params.{name}", problem))
    if not spec.triggers.manual and not spec.triggers.on_series_complete:
        errors.append(SpecError("triggers", "no way to start a run: enable manual or a trigger"))
    return errors


def _check_param(path: str, name: str, param: ParamSpec) -> list[SpecError]:
    errors: list[SpecError] = []
    if name == SERIES_PARAM:
        errors.append(SpecError(path, f"{SERIES_PARAM!r} is reserved for the series of a run"))
    if param.minimum is not None and param.maximum is not None and param.minimum > param.maximum:
        errors.append(SpecError(f"{path}.minimum", "minimum is greater than maximum"))
    if (param.minimum is not None or param.maximum is not None) and param.type not in (
        "integer",
        "number",
    ):
        errors.append(SpecError(path, f"minimum/maximum need a number type, not {param.type}"))
    if param.enum is not None:
        for index, option in enumerate(param.enum):
            if (problem := _type_problem(param.type, option)) is not None:
                errors.append(SpecError(f"{path}.enum[{index}]", problem))
    if param.default is not None and (problem := param_value_problem(param, param.default)):
        errors.append(SpecError(f"{path}.default", problem))
    return errors


def _type_problem(kind: str, value: Any) -> str | None:
    ok = {
        "string": isinstance(value, str),
        "integer": isinstance(value, int) and not isinstance(value, bool),
        "number": isinstance(value, int | float) and not isinstance(value, bool),
        "boolean": isinstance(value, bool),
        "array": isinstance(value, list),
    }[kind]
    return None if ok else f"{value!r} is not of type {kind}"


def param_value_problem(param: ParamSpec, value: Any) -> str | None:
    """Why ``value`` is not acceptable for ``param``, or ``None`` when it is."""
    if (problem := _type_problem(param.type, value)) is not None:
        return problem
    if param.enum is not None and value not in param.enum:
        return f"{value!r} is not one of {param.enum}"
    if param.minimum is not None and value < param.minimum:
        return f"{value!r} is less than the minimum {param.minimum:g}"
    if param.maximum is not None and value > param.maximum:
        return f"{value!r} is greater than the maximum {param.maximum:g}"
    return None


def parse_param_text(param: ParamSpec, text: str) -> Any:
    """The value typed as ``text`` (command line, form) for ``param``; ``ValueError`` if bad."""
    value: Any
    if param.type == "integer":
        value = int(text)
    elif param.type == "number":
        value = float(text)
    elif param.type == "boolean":
        if text.lower() not in ("true", "false", "yes", "no", "1", "0"):
            raise ValueError(f"{text!r} is not true or false")
        value = text.lower() in ("true", "yes", "1")
    elif param.type == "array":
        value = [part.strip() for part in text.split(",") if part.strip()]
    else:
        value = text
    if (problem := param_value_problem(param, value)) is not None:
        raise ValueError(problem)
    return value


def _check_steps(spec: WorkflowSpec, operator_lookup: OperatorLookup) -> list[SpecError]:
    errors: list[SpecError] = []
    names = [step.name for step in spec.steps]
    for index, step in enumerate(spec.steps):
        path = f"steps[{index}]"
        if names.index(step.name) != index:
            errors.append(SpecError(f"{path}.name", f"duplicate step name {step.name!r}"))
        for position, dependency in enumerate(step.depends_on):
            if dependency not in names:
                errors.append(
                    SpecError(f"{path}.depends_on[{position}]", f"unknown step {dependency!r}")
                )
            elif dependency == step.name:
                errors.append(
                    SpecError(f"{path}.depends_on[{position}]", "a step cannot depend on itself")
                )
        if step.input_from is not None and step.input_from not in step.depends_on:
            errors.append(
                SpecError(
                    f"{path}.input_from",
                    f"{step.input_from!r} must be a step listed in depends_on",
                )
            )
        name, version = split_operator_ref(step.operator)
        try:
            manifest = operator_lookup(name, version)
        except LookupError as error:
            errors.append(SpecError(f"{path}.operator", str(error).strip("'\"")))
            continue
        errors += _check_step_params(spec, path, step.params, manifest)
    cycle = _find_cycle({step.name: step.depends_on for step in spec.steps})
    if cycle:
        where = names.index(cycle[0])
        errors.append(
            SpecError(f"steps[{where}].depends_on", "cycle in depends_on: " + " → ".join(cycle))
        )
    return errors


def _check_step_params(
    spec: WorkflowSpec, path: str, values: dict[str, Any], manifest: OperatorManifest
) -> list[SpecError]:
    """Step params the operator does not take, or of the wrong type for it."""
    errors: list[SpecError] = []
    for key, value in values.items():
        where = f"{path}.params.{key}"
        accepted = manifest.params.get(key)
        if accepted is None:
            known = ", ".join(sorted(manifest.params)) or "none"
            errors.append(
                SpecError(where, f"{manifest.ref} takes no param {key!r} (it takes: {known})")
            )
            continue
        reference = PARAM_REFERENCE.match(value) if isinstance(value, str) else None
        if reference is None:
            if (problem := accepted.check(value)) is not None:
                errors.append(SpecError(where, problem))
            continue
        given = spec.params.get(reference.group(1))
        compatible = {accepted.type} | ({"integer"} if accepted.type == "number" else set())
        if given is not None and given.type not in compatible:
            errors.append(
                SpecError(
                    where,
                    f"param {reference.group(1)!r} is {given.type}, "
                    f"the operator takes {accepted.type}",
                )
            )
    return errors


def _find_cycle(graph: dict[str, list[str]]) -> list[str]:
    """One cycle of the dependency graph as a closed path of names, or ``[]``."""
    state: dict[str, str] = {}
    trail: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = "open"
        trail.append(node)
        for nxt in graph.get(node, []):
            if nxt not in graph or nxt == node:
                continue
            if state.get(nxt) == "open":
                return [*trail[trail.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        trail.pop()
        state[node] = "done"
        return []

    for node in graph:
        if node not in state and (found := visit(node)):
            return found
    return []


def _check_references(spec: WorkflowSpec) -> list[SpecError]:
    errors: list[SpecError] = []
    places: list[tuple[str, Any]] = [
        (f"steps[{index}].params.{key}", value)
        for index, step in enumerate(spec.steps)
        for key, value in step.params.items()
    ]
    places += [(f"input.query.{key}", value) for key, value in spec.input.query.items()]
    if spec.federated is not None and spec.federated.features_from not in {
        step.name for step in spec.steps
    }:
        errors.append(
            SpecError("federated.features_from", f"no step {spec.federated.features_from!r}")
        )
    if spec.input.kind == "cohort" and not spec.input.cohort:
        errors.append(SpecError("input.cohort", "kind: cohort needs the name of a saved cohort"))
    for key in spec.input.query:
        if key not in QUERY_FIELDS:
            errors.append(
                SpecError(f"input.query.{key}", f"not an index query field; one of {QUERY_FIELDS}")
            )
    for path, value in places:
        if isinstance(value, str) and "{{" in value:
            match = PARAM_REFERENCE.match(value)
            if match is None:
                errors.append(SpecError(path, "a reference must be exactly '{{ params.NAME }}'"))
            elif match.group(1) not in spec.params:
                errors.append(SpecError(path, f"unknown param {match.group(1)!r}"))
    return errors
