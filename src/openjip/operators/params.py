"""Params given to a step (a form, a workflow spec, ``--param k=v``) turned into checked values.

The manifest's params are the contract: unknown names, missing required values and values that
break type, enum or bounds are all reported at once, each named by its param.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from openjip.operators.manifest import OperatorManifest, ParamSpec, ParamValue

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


class ParamError(ValueError):
    """Params that do not fit an operator's manifest; ``problems`` are ``name: message`` lines."""

    def __init__(self, operator: str, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(f"invalid params for {operator}: " + "; ".join(problems))


def parse_assignments(assignments: Iterable[str]) -> dict[str, str]:
    """``["k=v", ...]`` as a dict; an entry lacking ``=`` raises :class:`ValueError`."""
    result: dict[str, str] = {}
    for item in assignments:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"--param {item!r}: expected NAME=VALUE")
        result[name.strip()] = value
    return result


def _from_text(text: str, spec: ParamSpec) -> ParamValue:
    """A command-line string as the param's type; raises ValueError with a short reason."""
    if spec.type == "string":
        return text
    if spec.type == "boolean":
        lowered = text.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ValueError(f"{text!r} is not a boolean (true/false)")
    if spec.type == "integer":
        try:
            return int(text.strip())
        except ValueError:
            raise ValueError(f"{text!r} is not an integer") from None
    try:
        return float(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not a number") from None


def resolve_params(manifest: OperatorManifest, given: Mapping[str, Any]) -> dict[str, ParamValue]:
    """Every param of ``manifest`` with its value: given (strings converted) or the default.

    Raises :class:`ParamError` naming every unknown, missing or invalid param.
    """
    problems: list[str] = []
    resolved: dict[str, ParamValue] = {}
    for name in given:
        if name not in manifest.params:
            known = ", ".join(sorted(manifest.params)) or "none"
            problems.append(f"{name}: unknown param (known: {known})")
    for name, spec in manifest.params.items():
        if name not in given or given[name] is None:
            if spec.default is None:
                problems.append(f"{name}: required param is missing")
            else:
                resolved[name] = spec.default
            continue
        value = given[name]
        if isinstance(value, str) and spec.type != "string":
            try:
                value = _from_text(value, spec)
            except ValueError as exc:
                problems.append(f"{name}: {exc}")
                continue
        if spec.type == "number" and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        problem = spec.check(value)
        if problem:
            problems.append(f"{name}: {problem}")
        else:
            resolved[name] = value
    if problems:
        raise ParamError(manifest.ref, problems)
    return resolved
