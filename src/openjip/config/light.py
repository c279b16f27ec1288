"""The place of the SQLite index read from the environment alone, without pydantic: for
read-only commands that must answer at once (``openjip query``).

It answers only when the full model (:class:`openjip.config.Settings`) would certainly say the
same: no ``.env`` file to read, no ``OPENJIP_INDEX`` variable but ``__BACKEND=sqlite`` and
``__PATH``, none of them empty. Otherwise it answers ``None`` and the caller reads the full
settings. Other sections' variables do not change the index's place, so they are not read (nor
checked: a read-only command does not need them).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

_HOME, _BACKEND, _PATH = "openjip_home", "openjip_index__backend", "openjip_index__path"
_DEFAULT_HOME = "~/.openjip"
_ENV_FILE = ".env"


def sqlite_index_path(environ: Mapping[str, str] = os.environ) -> Path | None:
    """The SQLite index file the settings name, or ``None`` when only the full settings can
    tell (another backend, a ``.env`` file, a JSON or empty value)."""
    if os.path.exists(_ENV_FILE):
        return None
    # pydantic-settings matches variable names without regard to case.
    values = {key.lower(): value for key, value in environ.items()}
    index_keys = {key for key in values if key.startswith("openjip_index")}
    if index_keys - {_BACKEND, _PATH}:
        return None
    if any(values.get(key) == "" for key in (_HOME, _BACKEND, _PATH)):
        return None
    if values.get(_BACKEND, "sqlite") != "sqlite":
        return None
    if _PATH in values:
        return Path(values[_PATH]).expanduser()
    return Path(values.get(_HOME, _DEFAULT_HOME)).expanduser() / "index.sqlite3"
