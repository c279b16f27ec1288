"""Versioned state of a site: schema versions of the stores openjip owns, their migration log,
backup, restore and the pre-flight check (``openjip site backup|restore|check``)."""

from openjip.state.versions import (
    STORES,
    StateTooNew,
    StoreVersion,
    ensure_store,
)

__all__ = ["STORES", "StateTooNew", "StoreVersion", "ensure_store"]
