"""Configuration of a site: one pydantic-settings model, prefix ``OPENJIP_``, nested sections.

Every setting is read from the environment (``OPENJIP_<SECTION>__<FIELD>``) or from a ``.env``
file; ``docs/configuration.md`` documents each one (a test checks that it does). The model is
imported on first use of a name below, so that :mod:`openjip.config.light` (the quick read of
read-only commands) loads no pydantic.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from openjip.config.settings import (
        AccessSettings,
        IndexSettings,
        ReceiverSettings,
        Settings,
        StorageSettings,
        WebSettings,
        get_settings,
    )

__all__ = [
    "AccessSettings",
    "IndexSettings",
    "ReceiverSettings",
    "Settings",
    "StorageSettings",
    "WebSettings",
    "get_settings",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("openjip.config.settings"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
