"""The settings model of a site; its sections live in :mod:`openjip.config.receiver`,
:mod:`openjip.config.services` and :mod:`openjip.config.access` (re-exported here)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from openjip.config.access import AccessSettings, OidcGrant
from openjip.config.deid import DeidPolicy, DeidSettings
from openjip.config.receiver import DimseAction, KnownAE, MoveDestination, ReceiverSettings
from openjip.config.services import (
    AirflowSettings,
    BackupSettings,
    DicomSettings,
    FederationSettings,
    IndexSettings,
    StorageSettings,
    WebSettings,
)

__all__ = [
    "AccessSettings",
    "AirflowSettings",
    "BackupSettings",
    "DeidPolicy",
    "DeidSettings",
    "DicomSettings",
    "DimseAction",
    "FederationSettings",
    "IndexSettings",
    "KnownAE",
    "MoveDestination",
    "OidcGrant",
    "ReceiverSettings",
    "Settings",
    "StorageSettings",
    "WebSettings",
    "get_settings",
]


class Settings(BaseSettings):
    """All settings of one site."""

    model_config = SettingsConfigDict(
        env_prefix="OPENJIP_",
        env_nested_delimiter="__",
        env_file=".env",
        extra="ignore",
    )

    home: Path = Field(
        Path("~/.openjip"),
        description="State of the site: object store, index, Airflow home, keys, logs.",
    )
    mode: Literal["local", "kubernetes"] = Field(
        "local", description="`local` runs everything on this machine; `kubernetes` in a cluster."
    )
    log_level: str = Field("INFO", description="Log level of the services.")
    receiver: ReceiverSettings = Field(default_factory=ReceiverSettings)
    web: WebSettings = Field(default_factory=WebSettings)
    dicom: DicomSettings = Field(default_factory=DicomSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    backup: BackupSettings = Field(default_factory=BackupSettings)
    index: IndexSettings = Field(default_factory=IndexSettings)
    federation: FederationSettings = Field(default_factory=FederationSettings)
    airflow: AirflowSettings = Field(default_factory=AirflowSettings)
    access: AccessSettings = Field(default_factory=AccessSettings)
    deid: DeidSettings = Field(default_factory=DeidSettings)

    @property
    def home_dir(self) -> Path:
        """``home`` with ``~`` expanded."""
        return self.home.expanduser()

    @property
    def storage_path(self) -> Path:
        """Root of the local object store."""
        return (self.storage.path or self.home_dir / "objects").expanduser()

    @property
    def federation_dir(self) -> Path:
        """Keys, peers, bundles and the audit log of the federation service."""
        return self.home_dir / "federation"

    @property
    def airflow_home(self) -> Path:
        """AIRFLOW_HOME of the local site."""
        return (self.airflow.home or self.home_dir / "airflow").expanduser()

    @property
    def airflow_url(self) -> str:
        """Base URL of the Airflow API and UI, without a trailing slash."""
        return (self.airflow.url or f"http://{self.airflow.host}:{self.airflow.port}").rstrip("/")

    @property
    def access_dir(self) -> Path:
        """Local users and other access state (mode 0700)."""
        return self.home_dir / "access"

    @property
    def access_audit_path(self) -> Path:
        """The access audit log (JSON lines)."""
        return self.home_dir / "audit" / "access.jsonl"

    @property
    def web_url(self) -> str:
        """Base URL of the web service as browsers reach it, without a trailing slash."""
        return (self.web.public_url or f"http://{self.web.host}:{self.web.port}").rstrip("/")

    @property
    def viewer_path(self) -> Path:
        """Folder of the OHIF viewer the web service serves at ``/viewer/``."""
        return (self.web.viewer_path or self.home_dir / "viewer").expanduser()

    @property
    def deid_secret_path(self) -> Path:
        """File of the de-identification secret."""
        return (self.deid.secret_file or self.home_dir / "deid.secret").expanduser()

    @property
    def index_path(self) -> Path:
        """File of the SQLite index."""
        return (self.index.path or self.home_dir / "index.sqlite3").expanduser()


def get_settings() -> Settings:
    """Read the settings from the environment (a new object each call, so tests can vary it)."""
    return Settings()
