"""Sites on one machine for federation tests: each with its own OPENJIP_HOME, identity, a
running federation service on a free loopback port and — unless told otherwise — its own web
service (which screens documents for patient data and answers statistics for it)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from openjip.config import Settings
from openjip.config.settings import FederationSettings
from openjip.federation.exchange import Exchange
from openjip.federation.service import FederationService
from openjip.web.service import WebService

REPO = Path(__file__).resolve().parents[2]
BODY_MASK_SPEC = Path(__file__).parent / "data" / "shared-body-mask.yaml"
DIGEST = "sha256:" + "ab" * 32
OTHER_DIGEST = "sha256:" + "cd" * 32


def operator_refs() -> list[str]:
    """``name@version`` of the operators the example spec uses."""
    import yaml

    spec = yaml.safe_load(BODY_MASK_SPEC.read_text())
    return [step["operator"] for step in spec["steps"]]


@dataclass
class Site:
    """One site of the test federation."""

    name: str
    home: Path
    exchange: Exchange
    service: FederationService

    @property
    def url(self) -> str:
        return self.service.url

    def trust(self, other: Site, policy: str = "manual") -> None:
        """Add ``other`` as a peer of this site."""
        self.exchange.peers.add(
            other.name,
            other.url,
            other.exchange.identity.public_key,
            policy,  # type: ignore[arg-type]
        )

    def workflow_files(self) -> list[Path]:
        return sorted((self.home / "workflows").glob("*.yaml"))


SiteFactory = Callable[..., Site]


@pytest.fixture
def make_site(tmp_path: Path) -> Iterator[SiteFactory]:
    """Create and start sites; every one is stopped at the end of the test."""
    started: list[Site] = []
    webs: list[WebService] = []

    def factory(
        name: str,
        *,
        digest: str | None = DIGEST,
        tls: tuple[Path, Path] | None = None,
        ca_bundle: Path | None = None,
        max_payload_bytes: int = 256 * 1024,
        also_allowed: tuple[str, ...] = (),
        web: bool = True,
    ) -> Site:
        home = tmp_path / name
        site_web_url = "http://127.0.0.1:1"  # nothing listens: the border fails closed
        if web:
            web_service = WebService(Settings(home=home, web={"host": "127.0.0.1", "port": 0}))
            web_service.start()
            webs.append(web_service)
            site_web_url = web_service.url
        settings = FederationSettings(
            host="127.0.0.1",
            port=0,
            pull_interval_seconds=0,
            allowed_operators=(
                {ref: digest for ref in (*operator_refs(), *also_allowed)} if digest else {}
            ),
            tls_cert=tls[0] if tls else None,
            tls_key=tls[1] if tls else None,
            ca_bundle=ca_bundle,
            max_payload_bytes=max_payload_bytes,
            site_web_url=site_web_url,
        )
        exchange = Exchange(home, settings)
        exchange.init(name)
        service = FederationService(exchange, log_level="warning")
        service.start()
        site = Site(name, home, exchange, service)
        started.append(site)
        return site

    yield factory
    for site in started:
        site.service.stop()
    for web_service in webs:
        web_service.stop()
