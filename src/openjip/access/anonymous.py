"""Anonymous access: only when the setting says so, and only on a loopback address (the rule
Orthanc applies to its ``RemoteAccessAllowed``): a service asked to serve anyone on a reachable
address refuses to start and names the setting."""

from __future__ import annotations

import ipaddress

from openjip.access.roles import Principal, principal
from openjip.config.settings import AccessSettings

ANONYMOUS_SETTING = "OPENJIP_ACCESS__ALLOW_ANONYMOUS"


class OpenAccessRefused(RuntimeError):
    """Anonymous access was asked for on an address others can reach."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) is reachable from this machine only."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def refuse_open_binding(settings: AccessSettings, host: str, service: str) -> None:
    """Raise :class:`OpenAccessRefused` when ``service`` would serve anonymous callers on
    ``host`` and ``host`` is not a loopback address."""
    if settings.allow_anonymous and not is_loopback(host):
        raise OpenAccessRefused(
            f"{service} refuses to start: {ANONYMOUS_SETTING}=true serves callers without "
            f"credentials, which is allowed on a loopback address only, not on {host!r}; "
            f"bind 127.0.0.1 or set {ANONYMOUS_SETTING}=false"
        )


def anonymous_principal(settings: AccessSettings) -> Principal | None:
    """Who a caller without credentials is, or ``None`` when they must authenticate."""
    if not settings.allow_anonymous:
        return None
    return principal(
        "anonymous", "anonymous", [settings.anonymous_role], settings.anonymous_projects
    )
