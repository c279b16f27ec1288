"""Who may see and change what at a site: roles and the actions they allow (:mod:`roles`),
principals (users, AEs, anonymous callers), local users with argon2id passwords (:mod:`users`),
OpenID Connect tokens and browser logins (:mod:`oidc`), login sessions (:mod:`sessions`), the
refuse-to-be-open rule (:mod:`anonymous`) and the access audit log (:mod:`audit`).

The surfaces (``web``, ``receiver``, ``airflow``) call this package; the backends below them
(``storage``, ``index``) know nothing of users, only of the projects a record belongs to.
"""

from openjip.access.anonymous import (
    ANONYMOUS_SETTING,
    OpenAccessRefused,
    anonymous_principal,
    is_loopback,
    refuse_open_binding,
)
from openjip.access.audit import ALLOWED, DENIED, AccessAudit
from openjip.access.files import create_private_dir, open_private_append, write_private_file
from openjip.access.roles import (
    ALL_PROJECTS,
    DEFAULT_PROJECT,
    ROLE_ACTIONS,
    Action,
    Principal,
    Role,
    principal,
)
from openjip.access.users import User, UserError, UserStore

__all__ = [
    "ALLOWED",
    "ALL_PROJECTS",
    "ANONYMOUS_SETTING",
    "DEFAULT_PROJECT",
    "DENIED",
    "ROLE_ACTIONS",
    "AccessAudit",
    "Action",
    "OpenAccessRefused",
    "Principal",
    "Role",
    "User",
    "UserError",
    "UserStore",
    "anonymous_principal",
    "create_private_dir",
    "is_loopback",
    "open_private_append",
    "principal",
    "refuse_open_binding",
    "write_private_file",
]
