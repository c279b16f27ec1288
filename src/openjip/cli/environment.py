"""What every command needs from its surroundings: the settings from the environment, the
consoles it writes to, logging, and the one way to stop with a clear message.
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:
    from openjip.config import Settings

console = Console(highlight=False, width=None if sys.stdout.isatty() else 1000)
"""Results (tables, summaries) go to standard output; piped, tables keep their natural width
instead of folding UIDs to 80 columns."""

err_console = Console(stderr=True, highlight=False)
"""Progress, notes and errors go to standard error, so results stay pipeable."""


def fail(message: str, *, code: int = 1) -> NoReturn:
    """Print ``message`` as an error and leave the command with exit code ``code``."""
    err_console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    raise typer.Exit(code)


def load_settings() -> Settings:
    """The site's settings; a bad ``OPENJIP_`` variable ends the command with its name."""
    from pydantic import ValidationError

    from openjip.config import Settings

    try:
        return Settings()
    except ValidationError as error:
        problems = "; ".join(
            f"OPENJIP_{'__'.join(str(part) for part in problem['loc']).upper()}: {problem['msg']}"
            for problem in error.errors()
        )
        fail(f"invalid setting: {problems}", code=2)


def configure_logging(settings: Settings) -> None:
    """Log to standard error at the configured level; pynetdicom only from WARNING, as it
    logs every association at INFO.
    """
    level = logging.getLevelName(settings.log_level.upper())
    if not isinstance(level, int):
        fail(f"invalid setting: OPENJIP_LOG_LEVEL: unknown level {settings.log_level!r}", code=2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("pynetdicom").setLevel(max(level, logging.WARNING))
