"""Configuration of a site: one pydantic-settings model, prefix ``OPENJIP_``, nested sections.

Every setting is read from the environment (``OPENJIP_<SECTION>__<FIELD>``) or from a ``.env``
file; ``docs/configuration.md`` documents each one (a test checks that it does).
"""

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
