"""Patient data at rest: what every openjip service process does first so that nothing it
writes is readable by other users of the machine.

The process mask becomes 077, so every file and directory a service (or a process it starts:
Airflow, analysis steps) creates is its owner's only, whatever code path writes it (C-STORE,
STOW-RS, step results, event and audit logs, the index and its WAL, Airflow's logs); and
``OPENJIP_HOME`` itself is made 0700, also when it existed before. Files that hold keys or
patient data are in addition created with explicit modes (:mod:`openjip.access.files`, the
object store, the index), so code run outside a service does not depend on the mask.
"""

from __future__ import annotations

import os

from openjip.access.files import create_private_dir
from openjip.config import Settings

PRIVATE_UMASK = 0o077


def protect_data_at_rest(settings: Settings) -> None:
    """Set the process mask to 077 and make ``OPENJIP_HOME`` 0700."""
    os.umask(PRIVATE_UMASK)
    create_private_dir(settings.home_dir)
