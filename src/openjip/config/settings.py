"""The settings model of a site and the sections it is made of."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class MoveDestination(BaseModel):
    """A DICOM node that C-MOVE may send to, known by its AE title."""

    host: str
    port: int = Field(ge=1, le=65535)


class ReceiverSettings(BaseModel):
    """The DIMSE service (C-ECHO, C-STORE, C-FIND, C-MOVE, C-GET)."""

    host: str = Field("127.0.0.1", description="Address the DICOM port binds to.")
    port: int = Field(11112, ge=0, le=65535, description="DICOM port (0 picks a free one).")
    ae_title: str = Field("OPENJIP", min_length=1, max_length=16, description="Our AE title.")
    allowed_calling_aes: list[str] = Field(
        default_factory=list,
        description="Calling AE titles accepted at association; empty accepts any caller.",
    )
    max_pdu: int = Field(
        0, ge=0, description="Maximum PDU length we receive, in bytes; 0 means unlimited."
    )
    max_associations: int = Field(64, ge=1, description="Concurrent associations per process.")
    workers: int = Field(
        0,
        ge=0,
        description="Receiver processes sharing the port (SO_REUSEPORT); 0 means one per CPU core.",
    )
    series_idle_seconds: float = Field(
        5.0,
        gt=0,
        description="A series with no new instance for this long is marked complete.",
    )
    sweep_interval_seconds: float = Field(
        1.0, gt=0, description="How often the receiver looks for series that became complete."
    )
    move_destinations: dict[str, MoveDestination] = Field(
        default_factory=dict,
        description='C-MOVE destinations by AE title, JSON: {"AE": {"host": "...", "port": 104}}.',
    )
    metrics_port: int = Field(
        0,
        ge=0,
        le=65535,
        description="Port of the receiver's own /metrics endpoint on `host`; 0 disables it.",
    )


class WebSettings(BaseModel):
    """The HTTP service: DICOMweb, /healthz and /metrics."""

    host: str = Field("127.0.0.1", description="Address the HTTP port binds to.")
    port: int = Field(8042, ge=0, le=65535, description="HTTP port.")


class StorageSettings(BaseModel):
    """Where instances and step outputs are kept."""

    backend: Literal["local", "s3"] = Field("local", description="`local` directory or `s3`.")
    path: Path | None = Field(
        None, description="Root of the local object store; default `$OPENJIP_HOME/objects`."
    )
    fsync: bool = Field(
        True, description="fsync each object and its directory before acknowledging it."
    )
    s3_endpoint: str = Field("127.0.0.1:9000", description="S3 endpoint host:port.")
    s3_bucket: str = Field("openjip", description="Bucket holding the site's objects.")
    s3_access_key: str = Field("", description="S3 access key.")
    s3_secret_key: SecretStr = Field(SecretStr(""), description="S3 secret key.")
    s3_secure: bool = Field(False, description="Use HTTPS to reach the S3 endpoint.")
    s3_region: str | None = Field(None, description="S3 region, when the server needs one.")


class IndexSettings(BaseModel):
    """The metadata index of studies, series and instances."""

    backend: Literal["sqlite", "opensearch"] = Field(
        "sqlite", description="`sqlite` file or `opensearch` cluster."
    )
    path: Path | None = Field(
        None, description="SQLite file of the index; default `$OPENJIP_HOME/index.sqlite3`."
    )


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
    storage: StorageSettings = Field(default_factory=StorageSettings)
    index: IndexSettings = Field(default_factory=IndexSettings)

    @property
    def home_dir(self) -> Path:
        """``home`` with ``~`` expanded."""
        return self.home.expanduser()

    @property
    def storage_path(self) -> Path:
        """Root of the local object store."""
        return (self.storage.path or self.home_dir / "objects").expanduser()

    @property
    def index_path(self) -> Path:
        """File of the SQLite index."""
        return (self.index.path or self.home_dir / "index.sqlite3").expanduser()


def get_settings() -> Settings:
    """Read the settings from the environment (a new object each call, so tests can vary it)."""
    return Settings()
