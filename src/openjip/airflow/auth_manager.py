"""``OpenjipAuthManager``: Airflow's auth manager for an openjip site (instead of Airflow's
development-only SimpleAuthManager).

Who a user is comes from the site's identity: the web service's login session (one login for
both: a browser signed in at the web service's ``/login`` passes Airflow's login page without a
second one, and signing in here starts that session too), openjip's own users (``openjip user``,
argon2id) at the login page and ``POST /auth/token``, the OpenID Connect provider of
``OPENJIP_ACCESS__OIDC_*`` at ``/auth/oidc/login`` (authorization code + PKCE) and as bearer
tokens on the REST API, and the site's own service account (``OPENJIP_AIRFLOW__USERNAME`` and
its password), which the receiver's triggers use. What a user may do follows its openjip roles
through :data:`RESOURCE_ACTIONS` and openjip's one role table (:data:`openjip.access.ROLE_ACTIONS`):
researchers trigger and see runs, viewers only see, and only admins edit connections,
variables, pools and configuration. Airflow is told to use it with
``AIRFLOW__CORE__AUTH_MANAGER=openjip.airflow.auth_manager.OpenjipAuthManager``.
"""

from __future__ import annotations

import functools
import hmac
import logging
from typing import TYPE_CHECKING, Any

from airflow.api_fastapi.app import AUTH_MANAGER_FASTAPI_APP_PREFIX
from airflow.api_fastapi.auth.managers.base_auth_manager import BaseAuthManager
from airflow.api_fastapi.auth.managers.models.base_user import BaseUser
from airflow.api_fastapi.common.types import MenuItem
from jwt import InvalidTokenError
from starlette.concurrency import run_in_threadpool

from openjip.access import Action, Principal, UserStore, principal
from openjip.access.oidc import InvalidToken, OidcProvider, OidcUnavailable
from openjip.access.sessions import SessionStore
from openjip.airflow.auth_user import OpenjipUser
from openjip.config import Settings, get_settings

if TYPE_CHECKING:
    from airflow.api_fastapi.auth.managers.base_auth_manager import ResourceMethod
    from airflow.api_fastapi.auth.managers.models.resource_details import (
        AccessView,
        AssetAliasDetails,
        AssetDetails,
        ConfigurationDetails,
        ConnectionDetails,
        DagAccessEntity,
        DagDetails,
        PoolDetails,
        VariableDetails,
    )
    from fastapi import FastAPI

LOGGER = logging.getLogger(__name__)

READ_METHODS = frozenset({"GET", "MENU"})

RESOURCE_ACTIONS: dict[str, tuple[Action, Action]] = {
    "configuration": (Action.ADMINISTER, Action.ADMINISTER),
    "connection": (Action.ADMINISTER, Action.ADMINISTER),
    "variable": (Action.ADMINISTER, Action.ADMINISTER),
    "pool": (Action.VIEW_RUNS, Action.ADMINISTER),
    "dag": (Action.VIEW_RUNS, Action.ADMINISTER),
    "dag_runs": (Action.VIEW_RUNS, Action.TRIGGER),
    "asset": (Action.VIEW_RUNS, Action.TRIGGER),
    "asset_alias": (Action.VIEW_RUNS, Action.TRIGGER),
    "view": (Action.VIEW_RUNS, Action.ADMINISTER),
}
"""Airflow resource -> (openjip action to read it, action to change it). ``dag`` is a DAG
itself (pause, delete); ``dag_runs`` everything run under it (trigger, clear, mark). Deleting
anything needs ``administer``."""

MENU_RESOURCES: dict[MenuItem, str] = {
    MenuItem.CONFIG: "configuration",
    MenuItem.CONNECTIONS: "connection",
    MenuItem.VARIABLES: "variable",
    MenuItem.POOLS: "pool",
    MenuItem.PROVIDERS: "configuration",
    MenuItem.PLUGINS: "configuration",
}
"""Menu entries shown only to whoever may read their resource; the rest need ``view``."""


def may(user: OpenjipUser, resource: str, method: str) -> bool:
    """Whether ``user`` may ``method`` (GET, POST, PUT, DELETE, MENU) on ``resource``."""
    read, write = RESOURCE_ACTIONS[resource]
    if method == "DELETE":
        return user.principal.can(Action.ADMINISTER)
    return user.principal.can(read if method in READ_METHODS else write)


class OpenjipAuthManager(BaseAuthManager[OpenjipUser]):
    """See the module docstring."""

    @functools.cached_property
    def site(self) -> Settings:
        """The site's settings, read once from the api-server's environment."""
        return get_settings()

    @functools.cached_property
    def users(self) -> UserStore:
        return UserStore(self.site.access_dir)

    @functools.cached_property
    def sessions(self) -> SessionStore:
        """The login sessions the web service keeps (in the site's object store)."""
        from openjip.storage import open_store

        return SessionStore(lambda: open_store(self.site), self.site.access.session_seconds)

    @functools.cached_property
    def oidc(self) -> OidcProvider | None:
        """The site's identity provider, ``None`` when OIDC is off."""
        return OidcProvider(self.site.access) if self.site.access.oidc_issuer else None

    # -- who is it ------------------------------------------------------------------------------

    def authenticate(self, username: str, password: str) -> Principal | None:
        """The principal of a user name and password: the site's service account, or a local
        user of ``openjip user``."""
        from openjip.airflow.client import AirflowUnavailable, site_password

        if username == self.site.airflow.username:
            try:
                expected = site_password(self.site)
            except AirflowUnavailable:
                expected = ""
            if expected and hmac.compare_digest(expected.encode(), password.encode()):
                return principal(username, "user", ["admin"], ["*"])
        return self.users.verify(username, password)

    def deserialize_user(self, token: dict[str, Any]) -> OpenjipUser:
        return OpenjipUser(str(token["sub"]), list(token["roles"]), list(token["projects"]))

    def serialize_user(self, user: OpenjipUser) -> dict[str, Any]:
        return {"sub": user.name, "roles": user.roles, "projects": user.projects}

    async def get_user_from_token(self, token: str) -> BaseUser:
        """Airflow's own JWT, else (with OIDC on) an access token of the identity provider."""
        try:
            return await super().get_user_from_token(token)
        except InvalidTokenError:
            if self.oidc is None:
                raise
        try:
            claims = await run_in_threadpool(self.oidc.verify, token)
        except (InvalidToken, OidcUnavailable) as error:
            raise InvalidTokenError(str(error)) from error
        return OpenjipUser.of(self.oidc.principal(claims))

    def get_url_login(self, **kwargs: Any) -> str:
        from urllib.parse import urlencode

        next_url = kwargs.get("next_url")
        login = f"{AUTH_MANAGER_FASTAPI_APP_PREFIX}/login"
        return f"{login}?{urlencode({'next': next_url})}" if next_url else login

    def get_url_logout(self) -> str | None:
        """Ends Airflow's token and the web service's session together."""
        return f"{AUTH_MANAGER_FASTAPI_APP_PREFIX}/logout"

    def get_fastapi_app(self) -> FastAPI | None:
        from openjip.airflow.auth_login import login_app

        return login_app(self)

    # -- what may it do ------------------------------------------------------------------------

    def is_authorized_configuration(
        self,
        *,
        method: ResourceMethod,
        user: OpenjipUser,
        details: ConfigurationDetails | None = None,
    ) -> bool:
        return may(user, "configuration", method)

    def is_authorized_connection(
        self,
        *,
        method: ResourceMethod,
        user: OpenjipUser,
        details: ConnectionDetails | None = None,
    ) -> bool:
        return may(user, "connection", method)

    def is_authorized_dag(
        self,
        *,
        method: ResourceMethod,
        user: OpenjipUser,
        access_entity: DagAccessEntity | None = None,
        details: DagDetails | None = None,
    ) -> bool:
        return may(user, "dag" if access_entity is None else "dag_runs", method)

    def is_authorized_asset(
        self, *, method: ResourceMethod, user: OpenjipUser, details: AssetDetails | None = None
    ) -> bool:
        return may(user, "asset", method)

    def is_authorized_asset_alias(
        self,
        *,
        method: ResourceMethod,
        user: OpenjipUser,
        details: AssetAliasDetails | None = None,
    ) -> bool:
        return may(user, "asset_alias", method)

    def is_authorized_pool(
        self, *, method: ResourceMethod, user: OpenjipUser, details: PoolDetails | None = None
    ) -> bool:
        return may(user, "pool", method)

    def is_authorized_variable(
        self,
        *,
        method: ResourceMethod,
        user: OpenjipUser,
        details: VariableDetails | None = None,
    ) -> bool:
        return may(user, "variable", method)

    def is_authorized_view(self, *, access_view: AccessView, user: OpenjipUser) -> bool:
        return may(user, "view", "GET")

    def is_authorized_custom_view(
        self, *, method: ResourceMethod, resource_name: str, user: OpenjipUser
    ) -> bool:
        return may(user, "view", method)

    def filter_authorized_menu_items(
        self, menu_items: list[MenuItem], *, user: OpenjipUser
    ) -> list[MenuItem]:
        return [item for item in menu_items if may(user, MENU_RESOURCES.get(item, "view"), "MENU")]
