"""Converting the values of simple command-line options (text, whole numbers, flags, lists of
text, one of an enum's values) without Typer's pydantic TypeAdapters: importing pydantic and
building an adapter per option took longer than the rest of ``openjip query studies`` together.
Options of any other type keep Typer's own conversion. This leans on Typer's runtime-parameter
hook (``typer._coercion``, typer 0.29); ``tests/cli`` run every command's options through it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, get_args, get_origin

from typer._click.exceptions import BadParameter
from typer._coercion import RuntimeParam
from typer.core import _TyperParameter

if TYPE_CHECKING:
    from typer._click import Command, Context
    from typer.models import ParameterInfo


@dataclass(frozen=True)
class _SimpleParam(RuntimeParam):
    """Typer's conversion of a ``str``, ``int``, ``bool``, enum or ``list[str]`` option."""

    def _coerce_value(self, value: Any, param: _TyperParameter, ctx: Context) -> Any:
        annotation = self.annotation
        if get_origin(annotation) is list:
            return [str(item) for item in value]
        if annotation is str:
            return str(value)
        if annotation is bool:
            return bool(value)
        if annotation is int:
            return self._whole_number(value, param, ctx)
        try:
            return annotation(value)
        except ValueError:
            choices = ", ".join(repr(member.value) for member in annotation)
            raise BadParameter(f"{value!r} is not one of {choices}.", ctx, param) from None

    def _whole_number(self, value: Any, param: _TyperParameter, ctx: Context) -> int:
        try:
            number = int(value)
        except ValueError:
            raise BadParameter(f"{value!r} is not a valid integer.", ctx, param) from None
        low, high = self.parameter_info.min, self.parameter_info.max
        if (low is not None and number < low) or (high is not None and number > high):
            limits = ((">=", low), ("<=", high))
            bounds = " and ".join(f"x{sign}{bound}" for sign, bound in limits if bound is not None)
            raise BadParameter(f"{number} is not in the range {bounds}.", ctx, param)
        return number


def _is_simple(annotation: Any, info: ParameterInfo) -> bool:
    if get_origin(annotation) is list:
        return get_args(annotation) == (str,)
    if annotation is int:
        return not info.clamp
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return bool(info.case_sensitive)  # other choices are Typer's to match
    return annotation in (str, bool)


def use_simple_coercion(command: Command) -> None:
    """Give every simple option of ``command`` (and of its subcommands), ``--help`` too (made
    anew for each invocation), the conversion above."""
    for param in command.params:
        _simplify(param)
    make_help_option = command.get_help_option

    def help_option(ctx: Context) -> Any:
        option = make_help_option(ctx)
        _simplify(option)
        return option

    command.get_help_option = help_option  # type: ignore[method-assign]
    for sub in getattr(command, "commands", {}).values():
        use_simple_coercion(sub)


def _simplify(param: object) -> None:
    if isinstance(param, _TyperParameter):
        descriptor = param.type_descriptor
        info = descriptor.parameter_info
        if descriptor.file_annotation is None and _is_simple(descriptor.annotation, info):
            param._runtime_param = _SimpleParam(info, descriptor.annotation)
