"""The access section of the settings: anonymous access, OpenID Connect, sessions, overwrites."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, SecretStr


class OidcGrant(BaseModel):
    """What members of one identity-provider group may do: roles on projects."""

    roles: list[Literal["admin", "researcher", "viewer", "uploader"]] = Field(default_factory=list)
    projects: list[str] = Field(default_factory=list)


class AccessSettings(BaseModel):
    """Who may see and change what: local users, OpenID Connect, anonymous access, audit."""

    allow_anonymous: bool = Field(
        False,
        description="Serve callers without credentials (as `anonymous_role` on "
        "`anonymous_projects`); a service refuses to start with it unless bound to loopback.",
    )
    anonymous_role: Literal["admin", "researcher", "viewer", "uploader"] = Field(
        "viewer", description="Role of callers without credentials when `allow_anonymous`."
    )
    anonymous_projects: list[str] = Field(
        default_factory=lambda: ["default"],
        description='Projects of callers without credentials, JSON list; ["*"] is every project.',
    )
    oidc_issuer: str = Field(
        "",
        description="OpenID Connect issuer URL (e.g. a Keycloak realm); empty turns OIDC off. "
        "Its discovery document names the JWKS, authorization and token endpoints.",
    )
    oidc_client_id: str = Field("", description="OIDC client id of the web service.")
    oidc_client_secret: SecretStr = Field(
        SecretStr(""), description="OIDC client secret (browser login's code exchange)."
    )
    oidc_audience: str = Field(
        "", description="`aud` a bearer token must carry; empty means `oidc_client_id`."
    )
    oidc_scopes: list[str] = Field(
        default_factory=lambda: ["openid", "profile", "email"],
        description="Scopes asked for at browser login, JSON list.",
    )
    oidc_username_claim: str = Field(
        "preferred_username", description="Claim naming the user (falls back to `sub`)."
    )
    oidc_groups_claim: str = Field(
        "groups",
        description="Claim listing the user's groups (a list or a space-separated string).",
    )
    oidc_groups: dict[str, OidcGrant] = Field(
        default_factory=dict,
        description='Roles and projects per group, JSON: {"radiology": {"roles": ["viewer"], '
        '"projects": ["p1"]}}; a user gets the union over its groups.',
    )
    oidc_leeway_seconds: int = Field(
        30, ge=0, le=300, description="Clock skew tolerated on `exp`/`nbf`/`iat`."
    )
    session_seconds: int = Field(
        8 * 3600, gt=0, description="Lifetime of a login session (cookie) of the web service."
    )
    step_token_secret: SecretStr = Field(
        SecretStr(""),
        description="Key (32 bytes or more) of the short-lived grants analysis pods present to the "
        "web service for their inputs and outputs (kubernetes mode; Airflow and the web service "
        "share it); empty turns the web service's `/steps` routes off.",
    )
    session_cookie_domain: str = Field(
        "",
        description="Domain of the session cookie, for one login across the web service and "
        "Airflow on different host names (e.g. `.hospital.example`); empty: the host itself "
        "(enough when both share a host, as a local site's ports do).",
    )
    overwrite_instances: bool = Field(
        False,
        description="A re-sent SOP instance whose bytes differ replaces the stored one (audited); "
        "off keeps the first and refuses the copy, as Orthanc's `OverwriteInstances: false`.",
    )
    audit_max_bytes: int = Field(
        64 * 1024 * 1024,
        ge=1024,
        description="Size at which `audit/access.jsonl` is rotated (three old files are kept).",
    )
